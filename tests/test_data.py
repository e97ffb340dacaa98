"""Data loading, rendering and the resumable sampler."""

from __future__ import annotations

import json

import pytest

from rlkit.config import DataConfig
from rlkit.data import DataError, PromptRenderer, PromptSampler, load_prompt_rows, load_rows
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


def test_sources_without_splits_refuse_other_splits(tmp_path):
    # A single file (or a folder holding one Dataset) is read whole as 'train': asking it for 'test'
    # must fail, never hand back the training rows as if they were held out.
    import datasets

    rows = [{"prompt": "q1", "answer": "1"}]
    (tmp_path / "d.jsonl").write_text('{"prompt": "q1", "answer": "1"}\n')
    (tmp_path / "d.json").write_text('[{"prompt": "q1", "answer": "1"}]')
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "single"))
    for name in ("d.jsonl", "d.json", "d.parquet"):
        source = str(tmp_path / name)
        assert load_rows(source, prompt_field="prompt", required_fields=["answer"]) == rows
        with pytest.raises(DataError, match=rf"split 'test' of {source}: a single file has no splits"):
            load_rows(source, split="test", prompt_field="prompt", required_fields=[])
    assert load_rows(str(tmp_path / "single"), prompt_field="prompt", required_fields=[]) == rows
    with pytest.raises(DataError, match="holds one Dataset without splits"):
        load_rows(str(tmp_path / "single"), split="test", prompt_field="prompt", required_fields=[])


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
    assert len(rows) == 300
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


def test_arithmetic_splits_are_disjoint_and_distinct():
    # + : 20 x 20 = 400, - : a >= b in [1, 20] = 210, x : 11 x 11 = 121 -> 731 distinct problems
    train, test = arithmetic(split="train"), arithmetic(split="test")
    assert (len(train), len(test)) == (631, 100)
    train_texts, test_texts = {r["prompt"] for r in train}, {r["prompt"] for r in test}
    assert (len(train_texts), len(test_texts)) == (631, 100)  # no problem twice within a split
    assert train_texts & test_texts == set()  # none shared across splits
    assert [r["id"] for r in test] == list(range(100))
    ops = [r["prompt"].split()[3] for r in train + test]
    assert {op: ops.count(op) for op in "+-×"} == {"+": 400, "-": 210, "×": 121}
    # the split is a function of the seed: another seed holds out other problems, still disjoint
    other = {r["prompt"] for r in arithmetic(split="test", seed=99)}
    assert other != test_texts and len(other) == 100
    assert len(arithmetic(split="test", test_size=250)) == 250 and len(arithmetic(test_size=250)) == 481
    assert arithmetic(split="train", num_examples=10) == train[:10]


def test_arithmetic_split_errors():
    with pytest.raises(DataError, match=r"data.builtin.num_examples=5000: split 'train' has 631 distinct problems"):
        load_rows("builtin:arithmetic", prompt_field="prompt", required_fields=[], builtin_params={"num_examples": 5000})
    with pytest.raises(DataError, match=r"data.split: builtin:arithmetic has splits \['train', 'test'\], got 'validation'"):
        load_rows("builtin:arithmetic", split="validation", prompt_field="prompt", required_fields=[])
    with pytest.raises(DataError, match=r"test_size must be in \[1, 730\]"):
        load_rows("builtin:arithmetic", prompt_field="prompt", required_fields=[], builtin_params={"test_size": 731})
    with pytest.raises(DataError, match="choose the split with data.split"):
        load_rows("builtin:arithmetic", prompt_field="prompt", required_fields=[], builtin_params={"split": "test"})


def test_load_rows_passes_the_split_to_builtins():
    from rlkit.data.builtin import BUILTIN_DATASETS, register_builtin_dataset

    rows = load_rows("builtin:arithmetic", split="test", prompt_field="prompt", required_fields=["answer"])
    assert rows == arithmetic(split="test")

    @register_builtin_dataset("unsplit_for_test")
    def unsplit(*, n: int = 2):
        return [{"prompt": str(i), "answer": str(i)} for i in range(n)]

    try:
        assert len(load_rows("builtin:unsplit_for_test", prompt_field="prompt", required_fields=[])) == 2
        with pytest.raises(DataError, match=r"data.split='test': builtin:unsplit_for_test has no splits"):
            load_rows("builtin:unsplit_for_test", split="test", prompt_field="prompt", required_fields=[])
    finally:
        del BUILTIN_DATASETS["unsplit_for_test"]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from rlkit.models import resolve_model_path

    return AutoTokenizer.from_pretrained(resolve_model_path("embedded:smollm2-135m-instruct"))


def test_long_prompts_are_found_when_the_data_loads(tokenizer, tmp_path, caplog):
    render = PromptRenderer(tokenizer, DataConfig()).render
    limit = len(render({"prompt": "hi"})) + 5
    rows = [{"prompt": "hi", "answer": "1"}, {"prompt": "word " * 40, "answer": "2"}, {"prompt": "yo", "answer": "3"},
            {"prompt": "word " * 9, "answer": "4"}]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lengths = [len(render(r)) for r in rows]
    assert [n > limit for n in lengths] == [False, True, False, True]
    cfg = DataConfig(source=str(path), max_prompt_tokens=limit)
    with pytest.raises(DataError) as err:
        load_prompt_rows(cfg, PromptRenderer(tokenizer, cfg))
    assert str(err.value) == (
        f"{path} (split 'train'): 2 of 4 prompts exceed data.max_prompt_tokens={limit}: "
        f"row 1 ({lengths[1]} tokens), row 3 ({lengths[3]} tokens); "
        "raise data.max_prompt_tokens or set data.on_long_prompt=skip"
    )
    skip = cfg.model_copy(update={"on_long_prompt": "skip"})
    with caplog.at_level("WARNING", logger="rlkit"):
        kept = load_prompt_rows(skip, PromptRenderer(tokenizer, skip))
    assert [r["answer"] for r in kept] == ["1", "3"]
    assert f"row 1 ({lengths[1]} tokens), row 3 ({lengths[3]} tokens); skipped" in caplog.text
    everything = skip.model_copy(update={"max_prompt_tokens": 1})
    with pytest.raises(DataError, match="4 of 4 prompts exceed .* leaves no rows"):
        load_prompt_rows(everything, PromptRenderer(tokenizer, everything))


def test_long_prompt_error_lists_twenty_rows_then_a_count(tokenizer):
    cfg = DataConfig(max_prompt_tokens=1)
    rows = [{"prompt": "hi", "answer": "1"}] * 23
    with pytest.raises(DataError, match=r"^src: 23 of 23 prompts .* row 19 \(\d+ tokens\) and 3 more;"):
        PromptRenderer(tokenizer, cfg).drop_long(rows, source="src")


def test_on_long_prompt_is_validated():
    from rlkit.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="data.on_long_prompt"):
        load_config(overrides=["reward.name=arithmetic", "data.on_long_prompt=truncate"])
