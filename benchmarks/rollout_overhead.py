"""rlkit's rollout time vs plain vLLM ``generate`` on the same prompts and sampling settings.

- baseline: ``vllm.LLM.generate`` called directly in this process.
- rlkit: the same engine settings inside rlkit's Ray actor (``RolloutEngine.generate``
  through ``ray.get``), returning token ids and log-probs as ``Completion`` objects.

The two engines run alternately (never at once), same seed and settings.
Target: ratio <= 1.10. Usage: python benchmarks/rollout_overhead.py [--prompts 8 --n 4 --tokens 32]
"""

from __future__ import annotations

import argparse
import os

import _common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    args = parser.parse_args()

    import ray
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams, TokensPrompt

    from rlkit.data.builtin import arithmetic
    from rlkit.models import resolve_model_path
    from rlkit.rollout.engine import engine_actor
    from rlkit.rollout.types import SamplingConfig

    path = str(resolve_model_path(args.model))
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = arithmetic(num_examples=args.prompts, seed=7)
    prompts = [
        list(tokenizer.apply_chat_template([{"role": "user", "content": r["prompt"]}], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
        for r in rows
    ]
    settings = dict(dtype="float32", seed=0, max_model_len=1024, kv_cache_memory_bytes=1 << 30, enforce_eager=True,
                    enable_prefix_caching=True, logprobs_mode="processed_logprobs")
    params = SamplingParams(n=args.n, temperature=1.0, max_tokens=args.tokens, logprobs=0, ignore_eos=True)
    sampling = SamplingConfig(n=args.n, temperature=1.0, max_new_tokens=args.tokens, ignore_eos=True)

    plain = LLM(model=path, **settings)
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    threads = os.cpu_count()
    actor = engine_actor(num_cpus=0, threads=threads).remote(model_path=path, kv_cache_bytes=1 << 30)
    ray.get(actor.ready.remote())
    # Fixed-length outputs (ignore_eos) make the work identical on both sides.
    ray.get(actor.generate.remote(prompts[:1], sampling))

    def baseline():
        plain.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)

    def rlkit_rollout():
        ray.get(actor.generate.remote(prompts, sampling))

    baseline()  # warm-up
    rlkit_rollout()
    tokens = args.prompts * args.n * args.tokens
    print(f"rollout of {args.prompts} prompts x {args.n} samples x {args.tokens} tokens ({tokens} tokens)")
    times = _common.alternate({"plain vLLM generate": baseline, "rlkit rollout (Ray actor)": rlkit_rollout}, args.repeats)
    _common.report(times, baseline="plain vLLM generate", subject="rlkit rollout (Ray actor)")
    ray.shutdown()


if __name__ == "__main__":
    main()
