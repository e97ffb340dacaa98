"""Renderers, the python and search tools, the tools env, and a two-turn Lean feedback episode (recorded REPL)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from rlkit.envs import ChatRenderer, InlineRenderer, Trajectory, call_tool, get_env
from rlkit.models import resolve_model_path
from rlkit.rewards.lean import build_command

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "rewards"))
from lean_helpers import reply_text  # noqa: E402

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap (bubblewrap) is not installed")


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model_path("embedded:smollm2-135m-instruct"))


def test_inline_renderer_encodes_without_special_tokens(tokenizer):
    r = InlineRenderer(tokenizer)
    ids = r.observation("4")
    assert ids == [2067, 4917, 46, 198, 36, 198, 9617, 4917, 46]  # " <result>\n4\n</result>"
    assert tokenizer.decode(ids) == " <result>\n4\n</result>"
    assert r.end_of_turn([1, 2]) == []


def test_chat_renderer_diff_keeps_the_separators(tokenizer):
    r = ChatRenderer(tokenizer, role="user")
    assert tokenizer.decode(r.eot) == "<|im_end|>\n"
    obs = r.observation("bad proof")
    assert tokenizer.decode(obs) == "<|im_start|>user\nbad proof<|im_end|>\n<|im_start|>assistant\n"
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    newline = tokenizer.encode("\n", add_special_tokens=False)
    assert r.end_of_turn([5, 6]) == [im_end, *newline]  # stopped on a stop string: both appended
    assert r.end_of_turn([5, im_end]) == newline  # the model sampled <|im_end|>: only the separator rest
    # the diff equals rendering the whole conversation at once
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    whole = r._ids(msgs + [{"role": "user", "content": "bad proof"}], generation_prompt=True)
    head = r._ids(msgs[:1], generation_prompt=True)
    sampled = tokenizer.encode("a", add_special_tokens=False)
    assert head + sampled + r.end_of_turn(sampled) + obs == whole


@needs_bwrap
def test_python_tool_runs_in_the_sandbox():
    ok = call_tool("python", "```python\nprint(6 * 7)\n```")
    assert (ok.error, ok.text) == (None, "42")
    err = call_tool("python", "x = 1\nprint(1 / 0)")
    assert err.text == "error: ZeroDivisionError: division by zero"
    net = call_tool("python", "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)")
    assert net.text.startswith("error: OSError") or net.text.startswith("error: ConnectionRefusedError") or "Network" in net.text


def test_search_tool_bm25_over_a_jsonl_corpus(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {"text": "Paris is the capital of France."},
        {"text": "The Nile is the longest river in Africa."},
        {"text": "Mount Everest is the highest mountain on Earth."},
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows))
    env = get_env("tools")(tools=["search"], search_corpus=str(corpus), search_top_k=1)
    assert env.stop == ("</search>",)
    step = env.step("I will look it up. <search>longest river Africa</search>")
    assert step.observation == "(1) The Nile is the longest river in Africa."
    assert step.info["tool_results"][0].ok
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"body": "b"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2:text: expected an object"):
        get_env("tools")(tools=["search"], search_corpus=str(bad))


def test_tools_env_parse_failure_and_final_answer():
    env = get_env("tools")(tools=["python"])
    miss = env.step("compute 2+2 </python>")
    assert (miss.done, miss.info) == (False, {"parse_error": True})
    assert miss.observation == "error: found </python> without an opening <python>; write <python>...</python>"
    assert env.step("Answer: 4").done


GCD_STATEMENT = "theorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by"


def test_lean_feedback_two_turn_episode(tokenizer, replay, lean_fixtures):
    """A failing proof gets Lean's recorded error back as a masked user turn; the fixed proof is accepted."""
    bad, good = "simp", "norm_num"
    error_reply = reply_text(lean_fixtures["constructed-v4.33.0-rc2-max_rec_depth"])
    ok_reply = reply_text(lean_fixtures["constructed-v4.15.0-print_axioms-standard"])
    request = lambda proof: {"cmd": build_command(GCD_STATEMENT, proof, theorem_name="mathd_numbertheory_188"), "env": 0}  # noqa: E731
    cmd, log = replay([
        {"request": {"cmd": "import Mathlib"}, "reply": '{"env": 0}'},
        {"request": request(bad), "reply": error_reply},
        {"request": request(good), "reply": ok_reply},
    ])  # fmt: skip
    env = get_env("lean_feedback")(repl_cmd=cmd, header="import Mathlib", timeout_s=10)
    env.reset({"statement": GCD_STATEMENT, "theorem_name": "mathd_numbertheory_188"})
    renderer = ChatRenderer(tokenizer, role="user")
    traj = Trajectory(prompt_ids=[1, 2, 3])

    first = tokenizer.encode(f"```lean\n{bad}\n```", add_special_tokens=False) + [tokenizer.eos_token_id]
    traj.append_sampled(first, [-0.5] * len(first))
    step1 = env.step(tokenizer.decode(first, skip_special_tokens=True))
    assert (step1.done, step1.reward, step1.info["verdict"]) == (False, 0.0, "error")
    assert step1.observation == (
        "Lean rejected the proof:\n2:2: error: maximum recursion depth has been reached\n"
        "use `set_option maxRecDepth <num>` to increase limit\n"
        "use `set_option diagnostics true` to get diagnostic information\n"
        "Write a corrected proof in a ```lean block."
    )
    traj.append_inserted(renderer.end_of_turn(first), kind="end_of_turn")
    obs = renderer.observation(step1.observation)
    traj.append_inserted(obs, kind="observation")

    second = tokenizer.encode(f"```lean\n{good}\n```", add_special_tokens=False) + [tokenizer.eos_token_id]
    traj.append_sampled(second, [-0.25] * len(second))
    step2 = env.step(tokenizer.decode(second, skip_special_tokens=True))
    assert (step2.done, step2.reward, step2.info["verdict"]) == (True, 1.0, "ok")

    newline = tokenizer.encode("\n", add_special_tokens=False)
    assert traj.token_ids == first + newline + obs + second
    assert traj.loss_mask == [1] * len(first) + [0] * (len(newline) + len(obs)) + [1] * len(second)
    assert sum(traj.loss_mask) == len(first) + len(second)


def test_an_environment_without_step_fails_at_construction():
    from rlkit.envs.base import Environment

    class NoStep(Environment):
        stop = ("</python>",)

    with pytest.raises(TypeError, match="abstract method 'step'|abstract method step"):
        NoStep()
