"""What vLLM reports as sampled-token log-probs under top-p / top-k, against the learner's two options.

Samples from a real vLLM engine (``logprobs_mode="processed_logprobs"``, as rlkit's engines run)
and recomputes every sampled token's log-prob with transformers, side by side:

- full softmax at the sampling temperature (what a learner without truncation computes);
- rlkit's ``token_logprobs_from_hidden(..., top_p=, top_k=)`` (what rlkit's learners compute).

    python benchmarks/top_p_logprobs.py [--model embedded:smollm2-135m-instruct] [--top-p 0.9] [--top-k -1]
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--top-k", type=int, default=-1)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from vllm import LLM, SamplingParams, TokensPrompt

    from rlkit.algorithms import token_logprobs_from_hidden
    from rlkit.models import resolve_model_path

    path = str(resolve_model_path(args.model))
    tokenizer = AutoTokenizer.from_pretrained(path)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 7 + 5?"}], add_generation_prompt=True, tokenize=False
    )
    prompt = tokenizer(text, add_special_tokens=False).input_ids
    llm = LLM(model=path, dtype="float32", seed=0, max_model_len=512, kv_cache_memory_bytes=1 << 28,
              enforce_eager=True, logprobs_mode="processed_logprobs")  # fmt: skip
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    weight = hf.get_output_embeddings().weight
    print(f"{'setting':<22}{'vs full softmax (mean / max)':>32}{'vs rlkit truncated (mean / max)':>36}")
    for top_p, top_k in ((1.0, -1), (args.top_p, args.top_k)):
        params = SamplingParams(n=args.samples, temperature=args.temperature, top_p=top_p, top_k=top_k,
                                max_tokens=args.tokens, logprobs=0, seed=1)  # fmt: skip
        out = llm.generate([TokensPrompt(prompt_token_ids=prompt)], params, use_tqdm=False)[0]
        full_err, trunc_err = [], []
        for o in out.outputs:
            ids = list(prompt) + list(o.token_ids)
            with torch.no_grad():
                hidden = hf.model(torch.tensor([ids])).last_hidden_state[0, len(prompt) - 1 : -1]
                targets = torch.tensor(o.token_ids)
                full, _ = token_logprobs_from_hidden(hidden, weight, targets, temperature=args.temperature)
                trunc, _ = token_logprobs_from_hidden(
                    hidden, weight, targets, temperature=args.temperature, top_p=top_p, top_k=top_k
                )
            engine = torch.tensor([step[t].logprob for step, t in zip(o.logprobs, o.token_ids)])
            full_err.append((engine - full).abs())
            trunc_err.append((engine - trunc).abs())
        f, t = torch.cat(full_err), torch.cat(trunc_err)
        print(f"{f'top_p={top_p} top_k={top_k}':<22}{f'{f.mean():.3e} / {f.max():.3e}':>32}{f'{t.mean():.3e} / {t.max():.3e}':>36}")


if __name__ == "__main__":
    main()
