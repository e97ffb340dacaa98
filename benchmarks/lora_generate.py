"""Generation with and without a LoRA adapter in the same vLLM engine, side by side (``model.lora.sync: adapter``).

One ``RolloutEngine`` on ``--model`` started with LoRA enabled (rank ``--rank``); the adapter is a
freshly initialised PEFT LoRA on every linear layer, loaded through rlkit's in-memory adapter sync.
Each round generates ``--prompts`` prompts x ``--n`` samples of exactly ``--tokens`` tokens
(ignore_eos) without the adapter (the base path) and then with it; rounds repeat ``--repeats``
times. Printed: seconds of each and the ratio adapter / base. On GPU vLLM's punica kernels make the
ratio small; on CPU the LoRA layers run as torch ops, so ``sync: merged`` may generate faster.
Usage: python benchmarks/lora_generate.py [--rank 32 --prompts 8 --n 4 --tokens 32 --repeats 1]
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401  (engine environment, thread settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=80)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from rlkit.config import LoraConfig
    from rlkit.learner.lora import adapter_config_dict, apply_lora, gather_adapter
    from rlkit.models import resolve_model_path
    from rlkit.rollout.engine import RolloutEngine
    from rlkit.rollout.types import SamplingConfig

    path = str(resolve_model_path(args.model))
    engine = RolloutEngine(model_path=path, kv_cache_bytes=1 << 28, lora_rank=args.rank)
    cfg = LoraConfig(rank=args.rank, alpha=args.rank)
    hf = apply_lora(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), cfg, gradient_checkpointing=False)
    adapter, config = gather_adapter(hf, sender=True), adapter_config_dict(cfg, path)
    prompts = [list(range(100, 100 + args.prompt_len)) for _ in range(args.prompts)]
    sampling = SamplingConfig(n=args.n, temperature=1.0, max_new_tokens=args.tokens, ignore_eos=True)
    print(f"{args.model}: {args.prompts} prompts x {args.n} samples x {args.tokens} tokens, LoRA rank {args.rank}", flush=True)
    times: dict[str, list[float]] = {"base": [], "adapter": []}
    for repeat in range(args.repeats):
        engine.lora_request = None
        started = time.perf_counter()
        engine.generate(prompts, sampling)
        times["base"].append(time.perf_counter() - started)
        engine.load_adapter(adapter, config, repeat + 1)
        started = time.perf_counter()
        engine.generate(prompts, sampling)
        times["adapter"].append(time.perf_counter() - started)
        print(f"  round {repeat + 1}: base {times['base'][-1]:.1f} s, adapter {times['adapter'][-1]:.1f} s", flush=True)
    base, lora = sum(times["base"]) / args.repeats, sum(times["adapter"]) / args.repeats
    print(f"  ratio adapter / base = {lora / base:.2f} ({lora:.1f} s vs {base:.1f} s)")


if __name__ == "__main__":
    main()
