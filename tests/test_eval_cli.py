"""`rlkit eval --split/--out`: the held-out split reaches evaluate(), the result is written as JSON."""

from __future__ import annotations

import json

from rlkit.cli import build_parser
from rlkit.evaluate import EvalResult


def test_eval_parses_split_and_out():
    args = build_parser().parse_args(
        ["eval", "examples/arithmetic_grpo.yaml", "model.path=x", "--split", "test", "--out", "r.json", "--prompts", "7"]
    )
    assert (args.split, args.out, args.prompts, args.samples, args.offset, args.overrides) == (
        "test", "r.json", 7, 4, 0, ["model.path=x"]
    )
    assert build_parser().parse_args(["eval", "c.yaml"]).split is None  # default: data.split


def test_eval_result_json_and_line(tmp_path):
    result = EvalResult(
        model="embedded:smollm2-135m-instruct", split="test", offset=0, prompts=100, samples_per_prompt=4,
        sampled_mean=0.4325, greedy_mean=0.61, mixed_group_frac=0.55, mean_tokens=16.75, truncated_frac=0.0975,
        seconds=80.2,
    )  # fmt: skip
    path = result.write_json(tmp_path / "out" / "eval.json")
    assert json.loads(path.read_text()) == {
        "model": "embedded:smollm2-135m-instruct", "split": "test", "offset": 0, "prompts": 100,
        "samples_per_prompt": 4, "sampled_mean": 0.4325, "greedy_mean": 0.61, "mixed_group_frac": 0.55,
        "mean_tokens": 16.75, "truncated_frac": 0.0975, "seconds": 80.2,
    }  # fmt: skip
    assert str(result) == (
        "split 'test' rows 0-99: 100 prompts x 4 samples: sampled 0.432, greedy 0.610, mixed groups 0.55, "
        "mean tokens 16.8, truncated 0.10 (80 s)"
    )


def test_multi_turn_eval_result_adds_turns_and_tool_calls(tmp_path):
    result = EvalResult(
        model="m", split="test", offset=0, prompts=2, samples_per_prompt=2, sampled_mean=0.75, greedy_mean=0.75,
        mixed_group_frac=0.0, mean_tokens=30.0, truncated_frac=0.0, seconds=3.0, turns_mean=2.0,
        tool_calls_per_sample=1.0,
    )  # fmt: skip
    written = json.loads(result.write_json(tmp_path / "eval.json").read_text())
    assert (written["turns_mean"], written["tool_calls_per_sample"]) == (2.0, 1.0)
    assert str(result).endswith("truncated 0.00, turns 2.00, tool calls 1.00 (3 s)")
