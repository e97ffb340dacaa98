"""Data loading, rendering and the resumable sampler."""

from __future__ import annotations

import json

import pytest

from rlkit.config import DataConfig
from rlkit.data import DataError, PromptRenderer, PromptSampler, load_rows
from rlkit.data.builtin import arithmetic


def test_jsonl_row_missing_field_names_file_row_and_field(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"prompt": "a", "answer": "1"}) + "\n" + json.dumps({"prompt": "b"}) + "\n")
    with pytest.raises(DataError) as err:
        load_rows(str(path), prompt_field="prompt", required_fields=["answer"])
    assert str(path) in str(err.value) and "row 1" in str(err.value) and "'answer'" in str(err.value)


def test_invalid_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "answer": "1"}\n{"prompt": \n')
    with pytest.raises(DataError, match=rf"{path}:2: invalid JSON"):
        load_rows(str(path), prompt_field="prompt", required_fields=[])


def test_parquet_and_datasets_folder(tmp_path):
    import datasets

    rows = [{"question": "q1", "answer": "1"}, {"question": "q2", "answer": "2"}]
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "d.parquet"))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "folder"))
    assert load_rows(str(tmp_path / "d.parquet"), prompt_field="question", required_fields=["answer"]) == rows
    assert load_rows(str(tmp_path / "folder"), prompt_field="question", required_fields=["answer"]) == rows
    with pytest.raises(DataError, match="no split 'test'"):
        load_rows(str(tmp_path / "folder"), split="test", prompt_field="question", required_fields=[])


def test_unknown_source_kinds():
    with pytest.raises(DataError, match="unknown builtin 'nope'; known: \\['arithmetic'\\]"):
        load_rows("builtin:nope", prompt_field="prompt", required_fields=[])
    with pytest.raises(DataError, match="does not exist"):
        load_rows("/no/such/file.jsonl", prompt_field="prompt", required_fields=[])
    with pytest.raises(DataError, match="unexpected keyword argument 'bogus'"):
        load_rows("builtin:arithmetic", prompt_field="prompt", required_fields=[], builtin_params={"bogus": 1})


def test_arithmetic_is_reproducible_and_correct():
    rows = arithmetic(num_examples=300, seed=3)
    assert rows == arithmetic(num_examples=300, seed=3)
    assert rows != arithmetic(num_examples=300, seed=4)
    for row in rows:
        a, op, b = row["prompt"].removeprefix("What is ").removesuffix("?").split()
        a, b = int(a), int(b)
        expected = {"+": a + b, "-": a - b, "×": a * b}[op]
        assert row["answer"] == str(expected)
        if op == "-":
            assert expected >= 0
        if op == "×":
            assert 2 <= a <= 12 and 2 <= b <= 12
    assert {r["prompt"].split()[3] for r in rows} == {"+", "-", "×"}


def test_sampler_resumes_exactly_and_reshuffles_per_epoch():
    a = PromptSampler(10, seed=5)
    first = a.next_indices(7)
    state = a.state_dict()
    rest = a.next_indices(8)  # crosses into epoch 1
    b = PromptSampler(10, seed=5)
    b.load_state_dict(state)
    assert b.next_indices(8) == rest
    assert sorted(first + rest[:3]) == list(range(10))  # epoch 0 is a permutation
    assert a.epoch == 1
    c = PromptSampler(10, seed=5)
    assert c.next_indices(10) != c.next_indices(10)  # a new order each epoch
    with pytest.raises(ValueError, match="this run has 11 rows"):
        PromptSampler(11, seed=5).load_state_dict(state)


def test_renderer_puts_few_shot_before_the_prompt(tiny_llama):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    cfg = DataConfig(few_shot=[{"role": "user", "content": "What is 7 + 5?"},
                               {"role": "assistant", "content": "7 + 5 = 12\nAnswer: 12"}], max_prompt_tokens=200)
    renderer = PromptRenderer(tok, cfg)
    msgs = renderer.messages({"prompt": "What is 2 + 2?"})
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"] and msgs[-1]["content"] == "What is 2 + 2?"
    text = tok.decode(renderer.token_ids({"prompt": "What is 2 + 2?"}))
    assert text.index("Answer: 12") < text.index("What is 2 + 2?")
    assert text.rstrip().endswith("assistant")
    with pytest.raises(DataError, match="over data.max_prompt_tokens=5"):
        PromptRenderer(tok, DataConfig(max_prompt_tokens=5)).token_ids({"id": 3, "prompt": "long " * 20})
