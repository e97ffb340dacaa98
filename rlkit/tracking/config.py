"""Typed ``log:`` section: which trackers a run writes to, and each one's settings.

```yaml
log:
  backends: [jsonl, tensorboard, wandb, mlflow]   # jsonl (metrics.jsonl) is always among them
  samples_every: 10                               # samples.jsonl + tracker tables every N steps
  wandb: {project: rlkit, entity: null, name: null, tags: [grpo], mode: offline}
  mlflow: {tracking_uri: null, experiment: rlkit}   # null: a file store at <output_dir>/mlruns
  tensorboard: {dir: null}                         # null: <run_dir>/tensorboard
```

A backend whose package is not installed fails here, at config load, naming the
extra that installs it. Imports no torch and none of the tracker packages.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

BackendName = Literal["jsonl", "tensorboard", "wandb", "mlflow"]

REQUIRED_PACKAGE: dict[str, str | None] = {"jsonl": None, "tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
"""The importable package each backend needs (installed by ``pip install 'rlkit[<backend>]'``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TensorBoardConfig(_Strict):
    dir: str | None = None
    """Event-file folder (default: ``<run_dir>/tensorboard``)."""


class WandbConfig(_Strict):
    project: str = "rlkit"
    entity: str | None = None
    name: str | None = None
    """Run name shown in W&B (default: the experiment ``name``)."""
    tags: list[str] = Field(default_factory=list)
    mode: Literal["offline", "online"] = "offline"
    """offline (default) writes ``<run_dir>/wandb/offline-run-*``; upload later with ``wandb sync``."""


class MlflowConfig(_Strict):
    tracking_uri: str | None = None
    """A tracking server (``http://host:5000``) or store URI; None: a file store at ``<output_dir>/mlruns``."""
    experiment: str = "rlkit"
    run_name: str | None = None
    """Default: the experiment ``name``."""
    tags: dict[str, str] = Field(default_factory=dict)


class LogConfig(_Strict):
    backends: list[BackendName] = Field(default_factory=lambda: ["jsonl"])
    """Trackers written at once; ``jsonl`` (``metrics.jsonl``, read by ``rlkit plot`` and resume) is required."""
    samples_every: int = Field(10, ge=0)
    """Every N steps write a few prompts with completions, rewards and advantages (0: never)."""
    samples_prompts: int = Field(2, ge=1)
    """Prompt groups written each time (all of a group's completions)."""
    tensorboard: TensorBoardConfig = Field(default_factory=TensorBoardConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)

    @field_validator("backends")
    @classmethod
    def _check_backends(cls, backends: list[str]) -> list[str]:
        if "jsonl" not in backends:
            raise ValueError("must include jsonl: metrics.jsonl is what `rlkit plot` and trainer.resume read")
        duplicates = sorted({b for b in backends if backends.count(b) > 1})
        if duplicates:
            raise ValueError(f"names {', '.join(duplicates)} twice")
        for name in backends:
            package = REQUIRED_PACKAGE[name]
            if package is not None and not _installed(package):
                raise ValueError(
                    f"backend {name!r} needs the {package!r} package, which is not installed: pip install 'rlkit[{name}]'"
                )
        return backends


def _installed(package: str) -> bool:
    """Whether ``package`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a broken install, or a module set to None in sys.modules
        return False
