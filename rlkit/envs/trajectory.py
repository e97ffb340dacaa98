"""One multi-turn rollout as an append-only list of token segments.

A segment is either *sampled* (token ids exactly as the engine returned them, with the engine's
log-probs: trained on) or *inserted* (prompt, tool output, verifier feedback, end-of-turn tokens
rlkit appends: never trained on). Sampled ids are never re-tokenized; text is decoded only to parse
actions. :meth:`Trajectory.fork` copies the trajectory at a segment boundary (ARPO branching,
arXiv 2507.19849 section 3.2: a branch shares the prefix up to and including a tool result).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

_IDS = itertools.count()
_SEGMENT_IDS = itertools.count()


@dataclass(frozen=True)
class Segment:
    """``ids`` with their ``logprobs`` (0.0 for inserted tokens); ``sampled`` marks engine output."""

    ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    sampled: bool
    kind: str = "sampled"  # "sampled" | "observation" | "end_of_turn" | ...
    text: str = ""
    top_logprobs: tuple[tuple[float, ...], ...] = ()  # per token: the top-k log-probs (ARPO entropy)
    uid: int = field(default_factory=lambda: next(_SEGMENT_IDS), compare=False)  # shared by forks

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.logprobs):
            raise ValueError(f"segment ({self.kind}): {len(self.ids)} ids but {len(self.logprobs)} log-probs")


@dataclass
class Trajectory:
    """A prompt (not part of the response) followed by response segments.

    ``group_id`` names the prompt's group (one baseline); ``parent_id`` is the trajectory this one
    was forked from (None for a root); ``fork_at`` the number of response segments it shares with it.
    """

    prompt_ids: list[int]
    group_id: int = 0
    prompt_index: int = 0
    segments: list[Segment] = field(default_factory=list)
    traj_id: int = field(default_factory=lambda: next(_IDS))
    parent_id: int | None = None
    fork_at: int = 0
    finish_reason: str | None = None  # "stop" | "length" | "max_turns" | "budget" | "abort"
    turns: int = 0
    info: dict = field(default_factory=dict)

    # ---------------------------------------------------------------- building

    def append_sampled(
        self, ids: list[int], logprobs: list[float], *, text: str = "", top_logprobs: list[list[float]] | None = None
    ) -> Segment:
        """Engine output, untouched; counts one turn."""
        self._check_open()
        seg = Segment(tuple(ids), tuple(logprobs), True, "sampled", text, tuple(tuple(t) for t in top_logprobs or ()))
        self.segments.append(seg)
        self.turns += 1
        return seg

    def append_inserted(self, ids: list[int], *, kind: str, text: str = "") -> Segment:
        """Tokens rlkit adds (observation, end-of-turn): log-prob 0, never trained on."""
        self._check_open()
        seg = Segment(tuple(ids), (0.0,) * len(ids), False, kind, text)
        self.segments.append(seg)
        return seg

    def finish(self, reason: str) -> None:
        self._check_open()
        self.finish_reason = reason

    def fork(self, at: int | None = None) -> "Trajectory":
        """A new open trajectory sharing the first ``at`` response segments (default: all of them)."""
        at = len(self.segments) if at is None else at
        if not 0 <= at <= len(self.segments):
            raise ValueError(f"fork at segment {at}: trajectory {self.traj_id} has {len(self.segments)} segments")
        kept = self.segments[:at]
        return Trajectory(
            prompt_ids=self.prompt_ids, group_id=self.group_id, prompt_index=self.prompt_index,
            segments=list(kept), parent_id=self.traj_id, fork_at=at,
            turns=sum(s.sampled for s in kept), info={k: v for k, v in self.info.items() if k == "h_init"},
        )  # fmt: skip

    def _check_open(self) -> None:
        if self.finish_reason is not None:
            raise ValueError(f"trajectory {self.traj_id} is finished ({self.finish_reason}); fork it to continue")

    # ---------------------------------------------------------------- flattened views

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def token_ids(self) -> list[int]:
        """Response ids: every segment, in order (the prompt excluded)."""
        return [t for s in self.segments for t in s.ids]

    @property
    def loss_mask(self) -> list[int]:
        """1 exactly on sampled tokens."""
        return [int(s.sampled) for s in self.segments for _ in s.ids]

    @property
    def rollout_logprobs(self) -> list[float]:
        return [lp for s in self.segments for lp in s.logprobs]

    @property
    def full_ids(self) -> list[int]:
        """Prompt + response: what the engine sees for the next turn."""
        return self.prompt_ids + self.token_ids

    @property
    def num_sampled(self) -> int:
        return sum(len(s.ids) for s in self.segments if s.sampled)

    @property
    def truncated(self) -> bool:
        return self.finish_reason in ("length", "budget")

    @property
    def last_sampled(self) -> Segment | None:
        return next((s for s in reversed(self.segments) if s.sampled), None)
