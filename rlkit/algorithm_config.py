"""The ``algorithm:`` section of an experiment config (typed; imports without torch).

Example::

    algorithm:
      advantage: grpo
      loss: gppo
      loss_agg: token-mean
      params: {clip_low: 0.2, clip_high: 0.28, dual_clip: 10.0}
      erc: [0.95, 1.05]
      sft_coef: 0.1
      kl: {coef: 0.0, kind: k3, target: loss}
      dynamic_sampling: {enabled: true, max_gen_batches: 1}
      overlong: {enabled: true, max_len: 20480, cache_len: 4096}
      rollout_correction: {kind: tis, level: token, clip: 2.0}

Loss and advantage names and their parameters are checked against the
registries of :mod:`rlkit.algorithms` when the config is validated (that import
happens lazily, inside the validator), so ``params: {clip_hgh: 0.3}`` fails at
load naming the key and the accepted ones. Modules listed in ``plugins`` are
imported first, so losses and estimators they register can be named here.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AlgorithmConfig", "DynamicSamplingConfig", "KLConfig", "LossAgg", "OverlongConfig", "RolloutCorrectionConfig",
]

LossAgg = Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class KLConfig(_Section):
    """KL penalty against the frozen reference model (off when ``coef`` is 0)."""

    coef: float = Field(default=0.0, ge=0.0)
    """GRPO: 0.04, ASPO: 0.001, DAPO/Klear/CE-GPPO/ERC: 0."""
    kind: Literal["k1", "k2", "k3"] = "k3"
    target: Literal["loss", "reward"] = "loss"
    """``loss``: ``coef · agg(kl)`` added to the loss; ``reward``: subtracted from the reward."""

    @property
    def enabled(self) -> bool:
        return self.coef > 0


class DynamicSamplingConfig(_Section):
    """DAPO dynamic sampling: drop groups whose rewards are all equal."""

    enabled: bool = False
    max_gen_batches: int = Field(default=8, ge=1)
    """Cap on generation rounds per step (finite, so a step cannot loop forever): 1 = drop without
    refill (Klear); larger refills like DAPO until the batch is full or the cap is reached."""


class OverlongConfig(_Section):
    """DAPO overlong reward shaping (``enabled``) and overlong filtering (``filter_truncated``)."""

    enabled: bool = False
    max_len: int | None = Field(default=None, ge=1)
    """Response length budget L_max (DAPO: 20480)."""
    cache_len: int | None = Field(default=None, ge=0)
    """Soft buffer L_cache before L_max where the penalty grows linearly (DAPO: 4096)."""
    penalty_factor: float = Field(default=1.0, ge=0.0)
    filter_truncated: bool = False
    """Mask truncated responses out of the loss entirely."""

    @model_validator(mode="after")
    def _lengths(self) -> OverlongConfig:
        if self.enabled and (self.max_len is None or self.cache_len is None):
            raise ValueError("overlong.enabled needs overlong.max_len and overlong.cache_len")
        if self.max_len is not None and self.cache_len is not None and self.cache_len > self.max_len:
            raise ValueError(f"overlong.cache_len ({self.cache_len}) must be <= overlong.max_len ({self.max_len})")
        return self


class RolloutCorrectionConfig(_Section):
    """Importance correction between the engine's sampling log-probs and the learner's old log-probs
    (:mod:`rlkit.algorithms.rollout_correction`; docs/algorithms.md section 13)."""

    kind: Literal["none", "tis", "mis"] = "none"
    """``tis``: truncated weights ``min(ρ, clip)``; ``mis``: masked weights ``ρ·1[ρ ≤ clip]``; ``none``: off."""
    level: Literal["token", "sequence"] = "token"
    """``token``: one ratio per token; ``sequence``: the product of a response's token ratios."""
    clip: float = Field(default=2.0, gt=0.0)
    """C: the truncation (tis) or rejection (mis) threshold on ρ."""


class AlgorithmConfig(_Section):
    """Advantage estimator, policy loss and the optional terms around them."""

    advantage: str = "grpo"
    advantage_params: dict[str, Any] = Field(default_factory=dict)
    loss: str = "ppo_clip"
    loss_agg: LossAgg = "token-mean"
    params: dict[str, Any] = Field(default_factory=dict)
    """Keyword parameters of ``loss`` (and ``norm_len`` for ``seq-mean-token-sum-norm``)."""
    erc: tuple[float, float] | None = None
    """Entropy-ratio clipping band ``[low, high]`` with ``0 < low < 1 < high`` (ERC: [0.95, 1.05])."""
    sft_coef: float = Field(default=0.0, ge=0.0)
    """Weight α of the SFT term on correct samples (Klear: 0.1)."""
    sft_threshold: float | None = None
    """A response enters the SFT term when its task score is >= this (default: the reward's success
    score, ``reward.success_score``: 1.0 for the built-ins, the weighted sum for components)."""
    rollout_correction: RolloutCorrectionConfig = Field(default_factory=RolloutCorrectionConfig)
    kl: KLConfig = Field(default_factory=KLConfig)
    dynamic_sampling: DynamicSamplingConfig = Field(default_factory=DynamicSamplingConfig)
    overlong: OverlongConfig = Field(default_factory=OverlongConfig)
    attribution: Literal["soft", "hard"] = "soft"
    """ARPO advantage attribution over trajectories that share prefixes (``rollout.arpo``): ``soft``
    trains each copy with its own advantage (GRPO); ``hard`` trains a shared token once with the
    mean advantage of the trajectories that contain it (arXiv 2507.19849 section 3.3)."""
    plugins: list[str] = Field(default_factory=list)
    """Modules imported before names are checked (and in every worker) to register custom losses/advantages."""

    @field_validator("erc")
    @classmethod
    def _erc_band(cls, erc: tuple[float, float] | None) -> tuple[float, float] | None:
        if erc is not None and not 0.0 < erc[0] < 1.0 < erc[1]:
            raise ValueError(f"erc band must satisfy 0 < low < 1 < high, got {list(erc)}")
        return erc

    def import_plugins(self) -> None:
        """Import the ``plugins`` modules (idempotent); unpickling a config, e.g. in a Ray worker, does it too."""
        for module in self.plugins:
            try:
                importlib.import_module(module)
            except ImportError as err:
                raise ValueError(f"algorithm.plugins: cannot import {module!r}: {err}") from err

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.import_plugins()

    @model_validator(mode="after")
    def _registered(self) -> AlgorithmConfig:
        self.import_plugins()
        if "erc" in self.params:
            raise ValueError("algorithm.params.erc: set the band as algorithm.erc, not as a loss parameter")
        from rlkit.algorithms import ParameterError, validate_advantage_params, validate_loss_params

        checks = (
            ("loss", "params", lambda: validate_loss_params(self.loss, self.params, loss_agg=self.loss_agg)),
            ("advantage", "advantage_params", lambda: validate_advantage_params(self.advantage, self.advantage_params)),
        )
        for field, params_field, check in checks:
            try:
                check()
            except ParameterError as err:
                key = "loss_agg" if err.param == "loss_agg" else f"{params_field}.{err.param}"
                raise ValueError(f"algorithm.{key}: {err.problem}") from None
            except ValueError as err:
                raise ValueError(f"algorithm.{field}: {err}") from None
        return self

    @property
    def needs_entropy(self) -> bool:
        """Whether learners must compute current and old full-vocabulary entropies."""
        return self.erc is not None
