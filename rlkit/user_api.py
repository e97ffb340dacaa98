"""Objects a Python user hands to :class:`rlkit.Trainer`, as with TRL's ``reward_funcs``:

```python
trainer = Trainer(config, reward_fn=[exact_answer, (brevity, 0.1)], train_data=rows_or_dataset,
                  eval_data=held_out, callbacks=[StopAtReward(0.9)])
while not trainer.done:
    metrics = trainer.step()          # one whole step; trainer.step is also the step counter (an int)
```

- ``reward_fn``: a callable ``fn(completion: str, sample: dict) -> float | RewardResult`` (rlkit's
  reward convention), or a list of them or of ``(fn, weight)`` pairs. They run in the reward
  worker processes (per-item timeout, crash isolation), sent there by value with cloudpickle, so
  lambdas, closures and functions of a script's ``__main__`` work; one that cannot be pickled is
  refused when the trainer is built.
- ``train_data`` / ``eval_data``: a list of row dicts or a ``datasets.Dataset``; checked like
  ``data.source`` rows (prompt field, required fields, prompt length).
- ``callbacks``: objects with any of ``on_step_end(trainer, metrics)``, ``on_eval(trainer, metrics)``,
  ``on_checkpoint(trainer, path)``; any of them may call ``trainer.request_stop(reason)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rlkit.data import DataError
from rlkit.rewards.config import RewardComponent, RewardConfig

logger = logging.getLogger("rlkit")

CALLBACK_EVENTS = ("on_step_end", "on_eval", "on_checkpoint")


class StepCounter(int):
    """``trainer.step``: the number of the current step (an int) that, called, runs the next step.

    ``trainer.step()`` is :meth:`Trainer.train_step`; arithmetic, comparison, JSON and pickling
    see a plain int.
    """

    def __new__(cls, value: int, run: Callable[..., dict]) -> "StepCounter":
        counter = super().__new__(cls, value)
        counter._run = run
        return counter

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return self._run(*args, **kwargs)

    def __reduce__(self):
        return (int, (int(self),))

    def __repr__(self) -> str:
        return int.__repr__(self)


class CallbackList:
    """Dispatches trainer events to user callbacks; a callback without a method for an event is skipped."""

    def __init__(self, callbacks: Iterable[Any] = ()) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not any(callable(getattr(cb, name, None)) for name in CALLBACK_EVENTS):
                raise TypeError(f"callback {cb!r} has none of the methods {', '.join(CALLBACK_EVENTS)}")

    def fire(self, event: str, trainer: Any, payload: Any) -> None:
        for cb in self.callbacks:
            method = getattr(cb, event, None)
            if callable(method):
                method(trainer, payload)


def rows_from_data(data: Any, *, prompt_field: str, required_fields: Sequence[str], what: str) -> list[dict]:
    """``data`` (rows or a ``datasets.Dataset``) as a list of dicts, each checked for the fields the
    prompt and the reward read; errors name ``what`` (e.g. ``train_data``), the row and the field."""
    if hasattr(data, "to_list") and hasattr(data, "column_names"):  # datasets.Dataset
        rows = data.to_list()
    elif isinstance(data, (list, tuple)):
        rows = list(data)
    else:
        raise TypeError(f"{what} must be a list of row dicts or a datasets.Dataset, got {type(data).__name__}")
    if not rows:
        raise DataError(f"{what}: no rows")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{what}: row {index} is a {type(row).__name__}, expected a dict")
        for name in [prompt_field, *required_fields]:
            if row.get(name) is None:
                raise DataError(
                    f"{what}: row {index} has no field {name!r} (fields present: {sorted(row)}); "
                    f"set data.prompt_field / data.required_fields to match the data"
                )
    return rows


def reward_from_callables(reward_fn: Any, base: RewardConfig | None):
    """A :class:`RewardScorer` over user callables, with ``base``'s timeout, workers and fallback score."""
    import cloudpickle

    from rlkit.rewards.scorer import RewardScorer

    entries = reward_fn if isinstance(reward_fn, (list, tuple)) and not _is_pair(reward_fn) else [reward_fn]
    if not entries:
        raise ValueError("reward_fn: an empty list")
    functions: dict[str, Callable] = {}
    components = []
    for position, entry in enumerate(entries):
        fn, weight = entry if _is_pair(entry) else (entry, 1.0)
        if not callable(fn):
            raise TypeError(f"reward_fn[{position}]: {fn!r} is not callable")
        name = getattr(fn, "__name__", type(fn).__name__).strip("<>") or "reward"
        unique, k = name, 2
        while unique in functions:
            unique, k = f"{name}_{k}", k + 1
        try:
            cloudpickle.dumps(fn)
        except Exception as e:
            raise TypeError(
                f"reward_fn[{position}] ({unique}) cannot be sent to the reward worker processes: cloudpickle failed "
                f"with {type(e).__name__}: {e}. Rewards run in separate processes; keep what the function uses "
                "picklable (no open files, locks or live connections), or register it with @register_reward in a "
                "module named by reward.module"
            ) from e
        functions[unique] = fn
        components.append(RewardComponent(name=unique, weight=float(weight)))
    if base is not None and (base.name is not None or base.components):
        logger.warning("reward_fn replaces the config's reward %s", base.name or [c.name for c in base.components])
    settings = {k: getattr(base, k) for k in ("timeout_s", "workers", "fallback_score")} if base else {}
    config = RewardConfig.model_construct(name=None, components=components, params={}, module=None, **settings)
    return RewardScorer(config, functions=functions)


def _is_pair(entry: Any) -> bool:
    return isinstance(entry, tuple) and len(entry) == 2 and callable(entry[0]) and isinstance(entry[1], (int, float))
