"""``rlkit train | sandbox | ...``: the command line (also ``python -m rlkit``)."""

from __future__ import annotations

import argparse
import sys


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _load(args: argparse.Namespace):
    """The validated config, or exit 2 with every bad key listed (before anything starts)."""
    from rlkit.config import ConfigError, load_config

    overrides = [*args.overrides, *(["trainer.overwrite=true"] if getattr(args, "overwrite", False) else [])]
    try:
        config = load_config(args.config, overrides=overrides)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise _Exit(2) from None
    if config.reward is None:
        print(f"error: invalid config {args.config}:\n  reward: required key is missing", file=sys.stderr)
        raise _Exit(2)
    return config


def _train(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.print_config:
        print(config.to_yaml())
        return 0
    from rlkit.run_dir import RunDirError
    from rlkit.trainer import Trainer

    try:
        with Trainer(config) as trainer:
            final = trainer.fit()
    except RunDirError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"done: final checkpoint {final}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from rlkit.checkpoint import export_hf
    from rlkit.learner.lora_checkpoint import export_merged

    from rlkit.learner.lora_checkpoint import is_lora_checkpoint

    if not args.merge and is_lora_checkpoint(args.checkpoint):
        print(f"error: {args.checkpoint} is a LoRA checkpoint: give --merge for a merged HF folder "
              "(its adapter alone is in adapter/)", file=sys.stderr)  # fmt: skip
        return 2
    try:
        out = (export_merged if args.merge else export_hf)(args.checkpoint, args.out)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"exported {args.checkpoint} to {out}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from rlkit.plot import plot_runs

    for path in plot_runs(args.runs, out=args.out, smooth=args.smooth):
        print(path)
    return 0


def _eval(args: argparse.Namespace) -> int:
    config = _load(args)
    from rlkit.evaluate import evaluate

    result = evaluate(config, num_prompts=args.prompts, samples=args.samples, offset=args.offset, split=args.split)
    print(result)
    if args.out:
        print(f"written to {result.write_json(args.out)}")
    return 0


def _collect_pool(args: argparse.Namespace) -> int:
    config = _load(args)
    from rlkit.replay.collect import collect_pool

    stats = collect_pool(
        config, checkpoint=args.checkpoint, out=args.out, samples=args.samples, temperature=args.temperature,
        top_p=args.top_p, min_correct=args.min_correct, success=args.success, num_prompts=args.prompts,
        offset=args.offset,
    )  # fmt: skip
    print(f"{stats}; written to {args.out}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from rlkit.config import ConfigError
    from rlkit.submit import submit_job, wait_for_job

    try:
        job_id = submit_job(args.config, args.overrides, address=args.address, working_dir=args.working_dir,
                            print_config=args.print_config, python=args.python)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"submitted {job_id} to {args.address}")
    if not args.wait:
        return 0
    status, logs = wait_for_job(args.address, job_id)
    print(logs)
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def _sandbox(args: argparse.Namespace) -> int:
    from rlkit.sandbox.cli import main as sandbox_main

    return sandbox_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlkit", description="RL post-training for LLMs with verifiable rewards.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train from a YAML experiment config",
                           description="Train from a YAML experiment config; dotted overrides follow it.")
    train.add_argument("config", help="experiment YAML, e.g. examples/arithmetic_grpo.yaml")
    train.add_argument("overrides", nargs="*", metavar="key.path=value", help="e.g. trainer.total_steps=5")
    train.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    train.add_argument("--overwrite", action="store_true",
                       help="delete an existing run directory of the same name first (trainer.overwrite=true)")
    train.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="sampled and greedy reward of a model on a config's data",
                        description="Sampled (rollout.temperature) and greedy mean reward of model.path on the "
                                    "config's data and reward; use model.path=<checkpoint> to evaluate a trained model.")
    ev.add_argument("config")
    ev.add_argument("overrides", nargs="*", metavar="key.path=value")
    ev.add_argument("--prompts", type=int, default=100, help="number of prompts (default 100)")
    ev.add_argument("--samples", type=int, default=4, help="sampled completions per prompt (default 4)")
    ev.add_argument("--offset", type=int, default=0, help="first row to use (default 0)")
    ev.add_argument("--split", default=None,
                    help="data split to evaluate (default: data.split); builtin:arithmetic holds out 'test'")
    ev.add_argument("--out", default=None, help="also write the result as JSON to this file")
    ev.set_defaults(func=_eval)

    pool = sub.add_parser("collect-pool", help="RLEP phase 1: a replay pool of a checkpoint's verified answers",
                          description="Sample --samples answers per prompt of CONFIG's data from --checkpoint, "
                                      "keep those scoring >= --success, and write the prompts with at least "
                                      "--min-correct of them to --out; train with replay.pool=OUT.")
    pool.add_argument("config")
    pool.add_argument("overrides", nargs="*", metavar="key.path=value")
    pool.add_argument("--checkpoint", required=True, help="a trained checkpoint folder (HF format)")
    pool.add_argument("--out", required=True, help="the pool file to write (JSONL)")
    pool.add_argument("--samples", type=int, default=64, help="answers per prompt (default 64)")
    pool.add_argument("--temperature", type=float, default=0.7, help="default 0.7")
    pool.add_argument("--top-p", type=float, default=0.95, help="default 0.95")
    pool.add_argument("--min-correct", type=int, default=2, help="correct answers a prompt needs for a pool (default 2)")
    pool.add_argument("--success", type=float, default=1.0, help="lowest score that counts as correct (default 1.0)")
    pool.add_argument("--prompts", type=int, default=None, help="only the first N prompts (default: all)")
    pool.add_argument("--offset", type=int, default=0, help="first prompt row (default 0)")
    pool.set_defaults(func=_collect_pool)

    submit = sub.add_parser("submit", help="run a training config as a job on a Ray cluster",
                            description="Validate CONFIG locally, then submit `rlkit train CONFIG ...` through the "
                                        "Ray Jobs API, shipping --working-dir (default: .) with it.")
    submit.add_argument("config")
    submit.add_argument("overrides", nargs="*", metavar="key.path=value")
    submit.add_argument("--address", required=True, help="the cluster's dashboard URL, e.g. http://head:8265")
    submit.add_argument("--working-dir", default=".", help="folder shipped to the job (must contain CONFIG)")
    submit.add_argument("--python", default="python", help="interpreter the job runs on the cluster (default: python)")
    submit.add_argument("--wait", action="store_true", help="wait for the job and print its logs")
    submit.add_argument("--print-config", action="store_true", help="the job only prints the resolved config")
    submit.set_defaults(func=_submit)

    plot = sub.add_parser("plot", help="PNG training curves of one or more runs",
                          description="Reward (and each component), length, entropy, clip fractions, KL, "
                                      "logprob diff, eval metrics and step time of each RUN's metrics.jsonl, "
                                      "runs overlaid; smoothed with the raw curve faint behind.")
    plot.add_argument("runs", nargs="+", help="run directories (holding metrics.jsonl)")
    plot.add_argument("--out", default="plots", help="folder for the PNGs (default plots/)")
    plot.add_argument("--smooth", type=int, default=5, help="moving-average window in steps (default 5; 1: raw)")
    plot.set_defaults(func=_plot)

    export = sub.add_parser("export", help="HF folder (safetensors + tokenizer) of a sharded checkpoint",
                            description="Rebuild the HF model folder (transformers and vLLM load it) from a "
                                        "checkpoint's sharded weights (dcp/), in this one process.")
    export.add_argument("checkpoint", help="a checkpoint folder, e.g. runs/NAME/checkpoints/step_10")
    export.add_argument("--out", required=True, help="the HF folder to write")
    export.add_argument("--merge", action="store_true",
                        help="a LoRA checkpoint: merge its adapter into the base weights (docs/lora.md)")
    export.set_defaults(func=_export)

    sandbox = sub.add_parser("sandbox", help="sandboxed code execution service (rlkit sandbox serve --help)",
                             add_help=False)
    sandbox.add_argument("rest", nargs=argparse.REMAINDER)
    sandbox.set_defaults(func=_sandbox)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _Exit as done:
        return done.code


if __name__ == "__main__":
    sys.exit(main())
