"""AlgorithmConfig: defaults, bounds, messages naming the bad key, recipes, import without torch."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from pydantic import ValidationError

from rlkit.algorithm_config import AlgorithmConfig
from rlkit.algorithms import POLICY_LOSSES, compute_policy_loss

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "examples" / "recipes").glob("*.yaml"))


def _error(**kw) -> str:
    with pytest.raises(ValidationError) as info:
        AlgorithmConfig(**kw)
    return str(info.value)


def test_defaults() -> None:
    cfg = AlgorithmConfig()
    assert (cfg.advantage, cfg.loss, cfg.loss_agg, cfg.params, cfg.erc, cfg.sft_coef) == (
        "grpo",
        "ppo_clip",
        "token-mean",
        {},
        None,
        0.0,
    )
    assert (cfg.kl.coef, cfg.kl.kind, cfg.kl.target, cfg.kl.enabled) == (0.0, "k3", "loss", False)
    assert (cfg.dynamic_sampling.enabled, cfg.dynamic_sampling.max_gen_batches) == (False, 8)  # finite cap
    assert (cfg.overlong.enabled, cfg.overlong.filter_truncated, cfg.overlong.penalty_factor) == (False, False, 1.0)
    assert not cfg.needs_entropy
    assert AlgorithmConfig(erc=[0.95, 1.05]).needs_entropy


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"loss": "gppo", "params": {"clip_hgh": 0.3}},
            "algorithm.params.clip_hgh: unknown parameter for loss 'gppo'; accepted: clip_low, clip_high, dual_clip",
        ),
        ({"loss": "gpo"}, "algorithm.loss: unknown loss 'gpo'; known: aspo, ce_gppo, dapo, gppo, ppo_clip"),
        (
            {"advantage": "gae"},
            "algorithm.advantage: unknown advantage 'gae'; known: dr_grpo, grpo, reinforce_pp, rloo",
        ),
        (
            {"advantage": "rloo", "advantage_params": {"eps": 0.1}},
            "algorithm.advantage_params.eps: unknown parameter for advantage 'rloo'; accepted: (none)",
        ),
        ({"loss": "gppo", "params": {"beta1": 0.5}}, "algorithm.params.beta1: unknown parameter for loss 'gppo'"),
        ({"loss": "gppo", "params": {"dual_clip": 1.0}}, "algorithm.params.dual_clip: must be > 1"),
        ({"loss": "ce_gppo", "params": {"beta2": "big"}}, "algorithm.params.beta2: expected float, got str 'big'"),
        (
            {"params": {"norm_len": 512}},
            "algorithm.params.norm_len: only applies to loss_agg 'seq-mean-token-sum-norm'",
        ),
        (
            {"loss_agg": "seq-mean-token-sum-norm", "params": {"clip": 0.2}},
            "accepted: clip_low, clip_high, dual_clip, norm_len",
        ),
        (
            {"loss_agg": "seq-mean-token-sum-norm", "params": {"norm_len": 0}},
            "algorithm.params.norm_len: must be an int >= 1",
        ),
        ({"params": {"erc": [0.9, 1.1]}}, "algorithm.params.erc: set the band as algorithm.erc"),
        ({"erc": [1.0, 1.05]}, "erc band must satisfy 0 < low < 1 < high"),
        (
            {"loss_agg": "sum"},
            "Input should be 'token-mean', 'seq-mean-token-sum', 'seq-mean-token-mean' or 'seq-mean-token-sum-norm'",
        ),
        ({"sft_coef": -0.1}, "sft_coef\n  Input should be greater than or equal to 0"),
        ({"kl": {"coef": 0.1, "kind": "k4"}}, "kl.kind\n  Input should be 'k1', 'k2' or 'k3'"),
        ({"kl": {"coeff": 0.1}}, "kl.coeff\n  Extra inputs are not permitted"),
        (
            {"dynamic_sampling": {"max_gen_batches": 0}},  # no more "0 = unlimited": a step must end
            "dynamic_sampling.max_gen_batches\n  Input should be greater than or equal to 1",
        ),
        (
            {"overlong": {"enabled": True, "max_len": 100}},
            "overlong.enabled needs overlong.max_len and overlong.cache_len",
        ),
        (
            {"overlong": {"enabled": True, "max_len": 100, "cache_len": 200}},
            "overlong.cache_len (200) must be <= overlong.max_len (100)",
        ),
        ({"plugins": ["rlkit_no_such_module"]}, "algorithm.plugins: cannot import 'rlkit_no_such_module'"),
        ({"lr": 1e-6}, "lr\n  Extra inputs are not permitted"),
    ],
)
def test_validation_messages(kw: dict, message: str) -> None:
    assert message in _error(**kw)


def test_valid_sum_norm_and_params() -> None:
    cfg = AlgorithmConfig(loss="ce_gppo", loss_agg="seq-mean-token-sum-norm", params={"norm_len": 512, "beta1": 0.5})
    assert cfg.params == {"norm_len": 512, "beta1": 0.5}
    AlgorithmConfig(advantage="grpo", advantage_params={"norm_std": False, "eps": 1e-4})


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipes_load_and_run(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    # A recipe is the paper's algorithm section over the demo experiment (and, for
    # Klear, its over-sampled generation batch), with the lr its mini-batch split needs
    # (tests/test_fidelity_config.py); ARPO's is also a rollout scheme over an environment.
    extra = {"rollout", "env"} if path.stem == "arpo" else set()
    assert set(raw) - {"base", "name", "trainer"} == {"algorithm", "learner"} | extra
    assert set(raw["learner"]) == {"lr"}
    cfg = AlgorithmConfig(**raw["algorithm"])
    lp = torch.tensor([[-0.5, -1.0]], dtype=torch.float64)
    entropy = torch.ones(1, 2, dtype=torch.float64) if cfg.needs_entropy else None
    loss, metrics = compute_policy_loss(
        cfg.loss,
        lp,
        lp,
        torch.tensor([1.0], dtype=torch.float64),
        torch.ones(1, 2),
        loss_agg=cfg.loss_agg,
        entropy=entropy,
        old_entropy=entropy,
        erc=cfg.erc,
        **cfg.params,
    )
    assert loss.item() == -1.0 and metrics["clip_frac"] == 0.0


def test_recipe_numbers() -> None:
    load = {p.stem: AlgorithmConfig(**yaml.safe_load(p.read_text())["algorithm"]) for p in RECIPES}
    assert set(load) == {"aspo", "ce_gppo", "dapo_erc", "gppo_erc", "klear_gppo", "arpo"}
    assert (load["arpo"].advantage, load["arpo"].attribution, load["arpo"].kl.coef) == ("grpo", "soft", 0.0)
    klear = load["klear_gppo"]
    assert (klear.loss, klear.params, klear.sft_coef) == (
        "gppo",
        {"clip_low": 0.2, "clip_high": 0.28, "dual_clip": 10.0},
        0.1,
    )
    assert klear.dynamic_sampling.enabled and klear.dynamic_sampling.max_gen_batches == 1
    assert load["ce_gppo"].params == {"clip_low": 0.2, "clip_high": 0.2, "dual_clip": 10.0, "beta1": 0.75, "beta2": 1.0}
    assert (load["aspo"].params["dual_clip"], load["aspo"].kl.coef, load["aspo"].kl.kind) == (3.0, 0.001, "k3")
    for name in ("dapo_erc", "gppo_erc"):
        assert load[name].erc == (0.95, 1.05) and load[name].params["dual_clip"] == 10.0
    assert load["dapo_erc"].params["clip_high"] == 0.28 and load["gppo_erc"].params["clip_high"] == 0.2


def test_module_imports_without_torch() -> None:
    # Load the file on its own (not through the rlkit package) with torch made unimportable.
    code = (
        "import sys, importlib.util\n"
        "sys.modules['torch'] = None\n"
        f"path = {str(ROOT / 'rlkit' / 'algorithm_config.py')!r}\n"
        "spec = importlib.util.spec_from_file_location('algorithm_config', path)\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "assert 'torch' not in [m for m, v in sys.modules.items() if v is not None]\n"
        "print(module.AlgorithmConfig.model_fields['loss'].default)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ppo_clip"


def test_plugins_register_before_names_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rlkit_test_plugin.py").write_text(
        "from torch import Tensor\n"
        "from rlkit.algorithms import TokenLoss, register_policy_loss\n"
        "@register_policy_loss('test_plugin_pg')\n"
        "def plugin_pg(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, *, scale: float = 1.0)"
        " -> TokenLoss:\n"
        "    return TokenLoss(values=-scale * advantages * (logprobs - old_logprobs).exp())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "algorithm.loss: unknown loss 'test_plugin_pg'" in _error(loss="test_plugin_pg")
    try:
        cfg = AlgorithmConfig(loss="test_plugin_pg", params={"scale": 2.0}, plugins=["rlkit_test_plugin"])
        assert cfg.params == {"scale": 2.0}
        assert "algorithm.params.scal: unknown parameter for loss 'test_plugin_pg'; accepted: scale" in _error(
            loss="test_plugin_pg", params={"scal": 2.0}, plugins=["rlkit_test_plugin"]
        )
        # A worker process that unpickles the config gets the plugin's loss registered too.
        code = (
            "import pickle, sys\n"
            "from rlkit.algorithms import POLICY_LOSSES\n"
            "assert 'test_plugin_pg' not in POLICY_LOSSES\n"
            "pickle.loads(sys.stdin.buffer.read())\n"
            "print(POLICY_LOSSES.defaults('test_plugin_pg'))\n"
        )
        env = {"PYTHONPATH": f"{ROOT}:{tmp_path}", "PATH": "/usr/bin:/bin"}
        worker = subprocess.run(
            [sys.executable, "-c", code], input=pickle.dumps(cfg), capture_output=True, env=env, timeout=120
        )
        assert worker.returncode == 0, worker.stderr.decode()
        assert worker.stdout.decode().strip() == "{'scale': 1.0}"
    finally:
        POLICY_LOSSES.unregister("test_plugin_pg")
        sys.modules.pop("rlkit_test_plugin", None)
