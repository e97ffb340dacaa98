"""Same task, same seed, one run per policy loss: final reward, entropy and clip fractions.

Runs the demo config (embedded model, built-in arithmetic) once per variant with
identical data order and sampling seed. Each batch is split into
``--mini-batches`` optimizer steps, so later mini-batches are off-policy and the
losses differ where they clip (with one on-policy step per batch every ratio is 1
and all of them reduce to the same policy gradient). Prints a table and writes a
PNG with the reward and entropy curves of all variants.

    python benchmarks/loss_variants.py [--steps 8] [--out benchmarks/out/loss_variants.png]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

VARIANTS: dict[str, list[str]] = {
    "grpo (ppo_clip)": ["algorithm.loss=ppo_clip"],
    "dapo": ["algorithm.loss=dapo"],
    "gppo": ["algorithm.loss=gppo"],
    "ce_gppo": ["algorithm.loss=ce_gppo"],
    "aspo": ["algorithm.loss=aspo"],
    "gppo + erc": ["algorithm.loss=gppo", "algorithm.erc=[0.95, 1.05]"],
}


def run_variant(name: str, overrides: list[str], *, steps: int, mini_batches: int, out: Path) -> list[dict]:
    from rlkit import Trainer, load_config

    run_name = name.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "plus")
    cfg = load_config("examples/arithmetic_grpo.yaml", overrides=[
        f"output_dir={out}", f"name={run_name}", f"trainer.total_steps={steps}", "trainer.save_final=false",
        "trainer.overwrite=true", "trainer.save_every=0",
        f"trainer.num_mini_batches={mini_batches}", "learner.lr=2e-5", *overrides,
    ])
    with Trainer(cfg) as trainer:
        trainer.fit()
    return [json.loads(line) for line in (out / run_name / "metrics.jsonl").read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--mini-batches", type=int, default=4)
    parser.add_argument("--out", default="benchmarks/out/loss_variants.png")
    parser.add_argument("--only", nargs="*", help="subset of variant names")
    args = parser.parse_args()

    curves: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in VARIANTS.items():
            if args.only and name not in args.only:
                continue
            curves[name] = run_variant(name, overrides, steps=args.steps, mini_batches=args.mini_batches, out=Path(tmp))

    tail = max(1, args.steps // 4)
    print(f"\n{args.steps} steps per loss, {args.mini_batches} mini-batches per step; means over the last {tail} steps")
    print(f"{'loss':<18}{'reward':>8}{'entropy':>9}{'clip':>8}{'clip_lo':>9}{'clip_hi':>9}{'dual':>7}{'erc':>7}")
    for name, records in curves.items():
        last = records[-tail:]

        def mean(key: str) -> float:
            return statistics.fmean(r.get(key, 0.0) for r in last)

        print(f"{name:<18}{mean('reward/mean'):8.3f}{mean('actor/entropy'):9.3f}{mean('actor/clip_frac'):8.4f}"
              f"{mean('actor/clip_frac_low'):9.4f}{mean('actor/clip_frac_high'):9.4f}{mean('actor/dual_clip_frac'):7.4f}"
              f"{mean('actor/erc_frac'):7.4f}")
    _plot(curves, Path(args.out))
    print(f"curves: {args.out}")


def _plot(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_e) = plt.subplots(1, 2, figsize=(11, 4))
    for name, records in curves.items():
        steps = [r["step"] for r in records]
        ax_r.plot(steps, [r["reward/mean"] for r in records], label=name)
        ax_e.plot(steps, [r["actor/entropy"] for r in records], label=name)
    ax_r.set(title="reward (mean over samples)", xlabel="step")
    ax_e.set(title="policy entropy (nats/token)", xlabel="step")
    ax_r.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
