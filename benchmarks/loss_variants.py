"""Same task, same seeds, one run per policy loss with its recipe's own mini-batch split.

Runs the demo config (embedded model, built-in arithmetic) once per variant and seed
with identical data order and sampling seed. Each variant takes from its recipe in
``examples/recipes/`` the loss parameters, the ERC band and the trainer split
(``num_mini_batches``, ``ppo_epochs``: the papers' train-batch / mini-batch ratio), so
later mini-batches are off-policy and the losses differ where they clip. Everything
else (model, data, no SFT/KL/dynamic sampling) is the same, so differences come from the
loss. Each variant also takes its recipe's ``learner.lr`` (the demo's lr x steps per batch,
spread over the recipe's optimizer steps). ``grpo`` has no recipe: ppo_clip with Klear's 8
mini-batches at 2.5e-6. ``--lr`` (one lr for every variant) and ``--num-mini-batches`` change
the size of the policy step, to separate a loss's behaviour from a too-large step.

Prints, per variant, means over the last steps (all seeds) of reward, entropy and clip
fractions, the ratio of reward and entropy to the grpo baseline, and whether the reward
and entropy differences exceed the step-to-step noise; and the policy's per-step movement,
``actor/approx_kl`` (mean of old - new log-prob over a step's mini-batches), averaged over every
step and its largest step (two standard errors of the
difference, from the per-step spread within the last steps). Writes a PNG of the curves.

    nice -n 10 python benchmarks/loss_variants.py [--steps 6] [--seeds 0 1] [--lr 2e-5] [--num-mini-batches N]
        [--only "gppo (klear)"] [--out benchmarks/out/loss_variants.png]

``--resume`` keeps the runs already in the ``.json`` beside ``--out``, so seeds can be added later.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from pathlib import Path

RECIPES = Path(__file__).resolve().parents[1] / "examples" / "recipes"

# name -> (recipe whose loss params / ERC band / trainer split the variant takes, loss)
VARIANTS: dict[str, tuple[str | None, str]] = {
    "grpo (ppo_clip)": (None, "ppo_clip"),
    "dapo": ("dapo_erc", "dapo"),
    "gppo (klear)": ("klear_gppo", "gppo"),
    "ce_gppo": ("ce_gppo", "ce_gppo"),
    "aspo": ("aspo", "aspo"),
    "gppo + erc": ("gppo_erc", "gppo"),
}


GRPO_LR = 2.5e-6  # the baseline's lr: the Klear-split recipes' (demo lr 1e-5 x 2 steps, over 8 steps)


def variant_overrides(
    recipe: str | None, loss: str, *, keep_erc: bool, num_mini_batches: int | None = None, lr: float | None = None
) -> list[str]:
    """The loss, its parameters, lr and trainer split of ``recipe`` (or ``lr``, ``num_mini_batches``) as dotted overrides."""
    if recipe is None:
        return [f"algorithm.loss={loss}", f"learner.lr={lr or GRPO_LR}",
                f"trainer.num_mini_batches={num_mini_batches or 8}", "trainer.ppo_epochs=1"]
    from rlkit import load_config

    cfg = load_config(RECIPES / f"{recipe}.yaml")
    params = json.dumps(cfg.algorithm.params)
    out = [f"algorithm.loss={loss}", f"algorithm.params={params}", f"learner.lr={lr or cfg.learner.lr}",
           f"trainer.num_mini_batches={num_mini_batches or cfg.trainer.num_mini_batches}",
           f"trainer.ppo_epochs={cfg.trainer.ppo_epochs}"]
    if keep_erc and cfg.algorithm.erc is not None:
        out.append(f"algorithm.erc={list(cfg.algorithm.erc)}")
    return out


def run_variant(name: str, overrides: list[str], *, steps: int, seed: int, out: Path) -> list[dict]:
    from rlkit import Trainer, load_config

    run_name = name.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "plus") + f"_s{seed}"
    cfg = load_config("examples/arithmetic_grpo.yaml", overrides=[
        f"output_dir={out}", f"name={run_name}", f"trainer.total_steps={steps}", "trainer.save_final=false",
        "trainer.overwrite=true", "trainer.save_every=0", f"seed={seed}", *overrides,
    ])  # fmt: skip
    with Trainer(cfg) as trainer:
        trainer.fit()
    return [json.loads(line) for line in (out / run_name / "metrics.jsonl").read_text().splitlines()]


def _tail_stats(runs: list[list[dict]], key: str, tail: int) -> tuple[float, float]:
    """Mean over the last ``tail`` steps of every seed, and its standard error from the per-step spread."""
    values = [r.get(key, 0.0) for records in runs for r in records[-tail:]]
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("inf")
    return mean, se


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--tail", type=int, default=0, help="last steps averaged (default: half the steps)")
    parser.add_argument("--lr", type=float, default=None, help="one learner lr for every variant (default: each recipe's)")
    parser.add_argument("--num-mini-batches", type=int, default=None,
                        help="optimizer steps per batch for every variant (default: each recipe's own)")
    parser.add_argument("--out", default="benchmarks/out/loss_variants.png")
    parser.add_argument("--only", nargs="*", help="subset of variant names")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already recorded in the --out .json (same --steps) and run only the missing ones")
    parser.add_argument("--report", action="store_true",
                        help="only print the table and plot from the runs recorded in the --out .json (implies --resume)")
    args = parser.parse_args()
    args.resume = args.resume or args.report
    tail = args.tail or max(1, args.steps // 2)

    records = Path(args.out).with_suffix(".json")  # every finished run, kept as it goes
    done: dict[str, dict[str, list[dict]]] = {}  # name -> seed -> records, from an earlier invocation
    if args.resume and records.exists():
        recorded = json.loads(records.read_text())
        if recorded.get("lr", 2e-5) != (args.lr or "recipe"):
            raise SystemExit(f"--resume: {records} holds runs at lr {recorded.get('lr', 2e-5)}, not {args.lr or 'recipe'}; "
                             "give another --out")
        done = recorded.get("runs", {})
    curves: dict[str, list[list[dict]]] = {}
    splits: dict[str, str] = {}
    runs: dict[str, dict[str, list[dict]]] = {name: dict(by_seed) for name, by_seed in done.items()}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (recipe, loss) in VARIANTS.items():
            if args.only and name not in args.only and name != "grpo (ppo_clip)":
                continue
            overrides = variant_overrides(recipe, loss, keep_erc=name.endswith("erc"), num_mini_batches=args.num_mini_batches,
                                          lr=args.lr)
            splits[name] = " ".join(o.split(".", 1)[1] for o in overrides if o.startswith(("learner.", "trainer.")))
            curves[name] = []
            for seed in args.seeds:
                kept = runs.get(name, {}).get(str(seed))
                if kept is not None and len(kept) == args.steps:
                    curves[name].append(kept)
                    print(f"[{name} seed {seed}] kept from {records}", flush=True)
                    continue
                if args.report:
                    raise SystemExit(f"--report: {records} has no {args.steps}-step run of {name!r} seed {seed}")
                curves[name].append(run_variant(name, overrides, steps=args.steps, seed=seed, out=Path(tmp)))
                runs.setdefault(name, {})[str(seed)] = curves[name][-1]
                records.parent.mkdir(parents=True, exist_ok=True)
                records.write_text(json.dumps({"lr": args.lr or "recipe", "splits": splits, "runs": runs}))
                last = curves[name][-1][-1]
                print(f"[{name} seed {seed}] step {last['step']}: reward {last['reward/mean']:.3f} "
                      f"entropy {last.get('actor/entropy', 0):.3f} clip {last.get('actor/clip_frac', 0):.4f}", flush=True)

    base_r, base_r_se = _tail_stats(curves["grpo (ppo_clip)"], "reward/mean", tail)
    base_e, base_e_se = _tail_stats(curves["grpo (ppo_clip)"], "actor/entropy", tail)
    print(f"\nlr {args.lr or 'of each recipe'}; {args.steps} steps x seeds {args.seeds} per loss; means over the last {tail} steps of every seed; "
          "'>noise': |difference to grpo| > 2 standard errors of the difference")
    print(f"{'loss':<17}{'lr, split':<44}{'reward':>8}{'±se':>7}{'x grpo':>8}{'>noise':>7}{'entropy':>9}{'±se':>7}"
          f"{'x grpo':>8}{'>noise':>7}{'clip':>8}{'dual':>7}{'erc':>7}{'kl mean':>8}{'kl max':>8}")
    for name, runs in curves.items():
        r, r_se = _tail_stats(runs, "reward/mean", tail)
        e, e_se = _tail_stats(runs, "actor/entropy", tail)
        clip, _ = _tail_stats(runs, "actor/clip_frac", tail)
        dual, _ = _tail_stats(runs, "actor/dual_clip_frac", tail)
        erc, _ = _tail_stats(runs, "actor/erc_frac", tail)
        kl, _ = _tail_stats(runs, "actor/approx_kl", len(runs[0]))  # every step: the size of the policy step
        kl_max = max(r.get("actor/approx_kl", 0.0) for records in runs for r in records)
        r_sig = abs(r - base_r) > 2 * math.hypot(r_se, base_r_se)
        e_sig = abs(e - base_e) > 2 * math.hypot(e_se, base_e_se)
        base = name == "grpo (ppo_clip)"
        print(f"{name:<17}{splits[name]:<44}{r:8.3f}{r_se:7.3f}{r / base_r if base_r else float('nan'):8.2f}"
              f"{'-' if base else ('yes' if r_sig else 'no'):>7}{e:9.3f}{e_se:7.3f}{e / base_e if base_e else float('nan'):8.2f}"
              f"{'-' if base else ('yes' if e_sig else 'no'):>7}{clip:8.4f}{dual:7.4f}{erc:7.4f}{kl:8.4f}{kl_max:8.3f}")
    _plot(curves, Path(args.out))
    print(f"curves: {args.out}")


def _plot(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_e) = plt.subplots(1, 2, figsize=(11, 4))
    for name, runs in curves.items():
        steps = [r["step"] for r in runs[0]]
        ax_r.plot(steps, [statistics.fmean(run[i]["reward/mean"] for run in runs) for i in range(len(steps))], label=name)
        ax_e.plot(steps, [statistics.fmean(run[i]["actor/entropy"] for run in runs) for i in range(len(steps))], label=name)
    ax_r.set(title="reward (mean over samples and seeds)", xlabel="step")
    ax_e.set(title="policy entropy (nats/token)", xlabel="step")
    ax_r.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
