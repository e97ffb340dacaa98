"""Prompt data: built-in generators, file/`datasets` loaders, chat rendering, the resumable sampler."""

from rlkit.data.builtin import BUILTIN_DATASETS, register_builtin_dataset
from rlkit.data.loader import DataError, load_rows
from rlkit.data.prompts import PromptRenderer, load_prompt_rows
from rlkit.data.sampler import PromptSampler

__all__ = ["BUILTIN_DATASETS", "DataError", "PromptRenderer", "PromptSampler", "load_prompt_rows", "load_rows",
           "register_builtin_dataset"]
