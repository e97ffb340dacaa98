"""data.template: raw format strings for base models; data.chat_template_kwargs reach the chat template."""

from __future__ import annotations

import copy

import pytest

from rlkit.config import ConfigError, DataConfig, load_config
from rlkit.data import DataError, PromptRenderer

R1_ZERO = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "User: {prompt}\nAssistant: <think>"
)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from rlkit.models import resolve_model_path

    return AutoTokenizer.from_pretrained(resolve_model_path("embedded:smollm2-135m-instruct"))


def test_raw_template_tokenizes_the_filled_format_string_only(tokenizer):
    cfg = DataConfig(template="raw", raw_format=R1_ZERO)
    renderer = PromptRenderer(tokenizer, cfg)
    row = {"prompt": "What is 2 + 3?", "answer": "5"}
    text = renderer.raw_text(row)
    assert text == ("A conversation between User and Assistant. The user asks a question, and the Assistant "
                    "solves it. User: What is 2 + 3?\nAssistant: <think>")
    ids = renderer.token_ids(row)
    assert ids == tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text  # no chat markup, no system prompt
    assert "<|im_start|>" not in tokenizer.decode(ids)


def test_raw_template_can_use_any_row_field_and_names_a_missing_one(tokenizer):
    renderer = PromptRenderer(tokenizer, DataConfig(template="raw", raw_format="Q ({topic}): {prompt}\nA:"))
    assert renderer.raw_text({"prompt": "1+1?", "topic": "sums"}) == "Q (sums): 1+1?\nA:"
    with pytest.raises(DataError, match=r"row 7: data.raw_format names field 'topic', which the row lacks"):
        renderer.token_ids({"id": 7, "prompt": "1+1?"})


def test_chat_template_kwargs_reach_the_template(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = (  # Qwen3-style: an empty think block when thinking is off
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "<|im_start|>assistant\n{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}"
    )
    row = {"prompt": "Hi"}
    on = tok.decode(PromptRenderer(tok, DataConfig()).token_ids(row))
    off = tok.decode(PromptRenderer(tok, DataConfig(chat_template_kwargs={"enable_thinking": False})).token_ids(row))
    assert on == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert off == on + "<think>\n\n</think>\n\n"


def test_template_config_is_checked_at_load():
    demo = "examples/arithmetic_grpo.yaml"
    with pytest.raises(ConfigError, match=r"data: system_prompt, few_shot and chat_template_kwargs belong to template: chat"):
        load_config(demo, overrides=["data.template=raw"])  # the demo has a few-shot example
    with pytest.raises(ConfigError, match=r"data: raw_format must name row fields as \{field\}"):
        load_config(demo, overrides=["data.template=raw", "data.few_shot=[]", "data.raw_format=no fields here"])
    with pytest.raises(ConfigError, match=r"data: raw_format is not a valid format string"):
        load_config(demo, overrides=["data.template=raw", "data.few_shot=[]", "data.raw_format='{prompt'"])
    with pytest.raises(ConfigError, match=r"data.template: Input should be 'chat' or 'raw'"):
        load_config(demo, overrides=["data.template=plain"])
    cfg = load_config(demo, overrides=["data.template=raw", "data.few_shot=[]", "data.raw_format='Q: {prompt}\\nA:'"])
    assert cfg.data.raw_format == "Q: {prompt}\\nA:"
