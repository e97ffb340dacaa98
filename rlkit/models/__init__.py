"""Model resolution: local HF folders and models embedded in installed wheels."""

from rlkit.models.embedded import EMBEDDED_MODELS, resolve_model_path

__all__ = ["EMBEDDED_MODELS", "resolve_model_path"]
