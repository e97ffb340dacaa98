"""Load prompt rows from ``builtin:<name>``, JSONL/JSON/Parquet files or a ``datasets`` folder.

Every row must carry the prompt field and each required field; a missing one
fails with the file, the row index and the field name.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from rlkit.data.builtin import BUILTIN_DATASETS


class DataError(ValueError):
    """A dataset that cannot be used as configured."""


def load_rows(source: str, *, split: str = "train", prompt_field: str, required_fields: list[str],
              builtin_params: dict[str, Any] | None = None) -> list[dict]:
    rows = _read(source, split=split, builtin_params=builtin_params or {})
    if not rows:
        raise DataError(f"data.source {source!r}: no rows")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{source}: row {index} is a {type(row).__name__}, expected an object")
        for field in [prompt_field, *required_fields]:
            if field not in row or row[field] is None:
                raise DataError(
                    f"{source}: row {index} has no field {field!r} (fields present: {sorted(row)}); "
                    f"set data.prompt_field / data.required_fields to match the data"
                )
    return rows


def _read(source: str, *, split: str, builtin_params: dict[str, Any]) -> list[dict]:
    if source.startswith("builtin:"):
        name = source.removeprefix("builtin:")
        if name not in BUILTIN_DATASETS:
            raise DataError(f"data.source: unknown builtin {name!r}; known: {sorted(BUILTIN_DATASETS)}")
        generator = BUILTIN_DATASETS[name]
        params = dict(builtin_params)
        if "split" in params:
            raise DataError("data.builtin.split: choose the split with data.split, not a generator parameter")
        if "split" in inspect.signature(generator).parameters:
            params["split"] = split
        elif split != "train":
            raise DataError(f"data.split={split!r}: builtin:{name} has no splits (only 'train')")
        try:
            return generator(**params)
        except TypeError as err:
            raise DataError(f"data.builtin: {err}") from None
        except ValueError as err:
            raise DataError(str(err)) from None
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"data.source: {source} does not exist")
    if path.is_dir():
        return _read_datasets_folder(path, split)
    if split != "train":  # never hand back the training rows under another split's name
        raise DataError(
            f"split {split!r} of {source}: a single file has no splits (it is read whole as 'train'); "
            "give held-out prompts their own file (eval.source, or data.source=<file> for rlkit eval)"
        )
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        data = json.loads(path.read_text())
        if not isinstance(data, list):
            raise DataError(f"{path}: a .json dataset must hold a list of row objects")
        return data
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise DataError(f"data.source: {path} has unsupported suffix {suffix!r}; use .jsonl, .json, .parquet or a datasets folder")


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open() as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{line_no}: invalid JSON ({err.msg})") from None
    return rows


def _read_datasets_folder(path: Path, split: str) -> list[dict]:
    from datasets import DatasetDict, load_from_disk

    ds = load_from_disk(str(path))
    if isinstance(ds, DatasetDict):
        if split not in ds:
            raise DataError(f"{path}: no split {split!r}; splits: {list(ds)}")
        ds = ds[split]
    elif split != "train":
        raise DataError(
            f"split {split!r} of {path}: this datasets folder holds one Dataset without splits (read whole as "
            "'train'); save a DatasetDict with the split, or give held-out prompts their own folder (eval.source)"
        )
    return ds.to_list()
