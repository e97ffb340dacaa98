"""``rlkit train | sandbox | ...``: the command line (also ``python -m rlkit``)."""

from __future__ import annotations

import argparse
import sys


def _train(args: argparse.Namespace) -> int:
    from rlkit.config import ConfigError, load_config

    try:
        config = load_config(args.config, overrides=args.overrides)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.print_config:
        print(config.to_yaml())
        return 0
    from rlkit.trainer import Trainer

    with Trainer(config) as trainer:
        final = trainer.fit()
    print(f"done: final checkpoint {final}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from rlkit.config import ConfigError, load_config

    try:
        config = load_config(args.config, overrides=args.overrides)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from rlkit.evaluate import evaluate

    print(evaluate(config, num_prompts=args.prompts, samples=args.samples, offset=args.offset))
    return 0


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
    train.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="sampled and greedy reward of a model on a config's data",
                        description="Sampled (rollout.temperature) and greedy mean reward of model.path on the "
                                    "config's data and reward; use model.path=<checkpoint> to evaluate a trained model.")
    ev.add_argument("config")
    ev.add_argument("overrides", nargs="*", metavar="key.path=value")
    ev.add_argument("--prompts", type=int, default=100, help="number of prompts (default 100)")
    ev.add_argument("--samples", type=int, default=4, help="sampled completions per prompt (default 4)")
    ev.add_argument("--offset", type=int, default=0, help="first row to use (default 0)")
    ev.set_defaults(func=_eval)

    sandbox = sub.add_parser("sandbox", help="sandboxed code execution service (rlkit sandbox serve --help)",
                             add_help=False)
    sandbox.add_argument("rest", nargs=argparse.REMAINDER)
    sandbox.set_defaults(func=_sandbox)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
