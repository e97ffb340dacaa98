"""Batch jobs for `Sandbox.run_many`: `RunJob` (one program) and `TestJob` (a test suite)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Union

from rlkit.sandbox.limits import Limits

TestMode = Literal["assert", "stdio"]


@dataclass(frozen=True)
class RunJob:
    """The arguments of `Sandbox.run`."""

    code: str
    language: str = "python"
    stdin: str = ""
    limits: Limits | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "run",
            "code": self.code,
            "language": self.language,
            "stdin": self.stdin,
            "limits": self.limits.to_dict() if self.limits else None,
        }


@dataclass(frozen=True)
class TestJob:
    """The arguments of `Sandbox.run_tests`."""

    __test__ = False  # not a pytest test class

    code: str
    tests: list[Any] = field(default_factory=list)
    language: str = "python"
    mode: TestMode = "assert"
    limits: Limits | None = None
    stop_on_first_failure: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "tests",
            "code": self.code,
            "tests": list(self.tests),
            "language": self.language,
            "mode": self.mode,
            "limits": self.limits.to_dict() if self.limits else None,
            "stop_on_first_failure": self.stop_on_first_failure,
        }


Job = Union[RunJob, TestJob]


def job_from_dict(data: Mapping[str, Any]) -> Job:
    """A job from its dict form; ``kind`` is ``run`` or ``tests`` (default: ``tests`` when ``tests`` is given)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"a job must be a RunJob, TestJob or mapping, got {type(data).__name__}")
    fields = dict(data)
    kind = fields.pop("kind", "tests" if "tests" in fields else "run")
    if fields.get("limits") is not None and not isinstance(fields["limits"], Limits):
        fields["limits"] = Limits.from_dict(fields["limits"])
    cls = {"run": RunJob, "tests": TestJob}.get(kind)
    if cls is None:
        raise ValueError(f"job kind must be 'run' or 'tests', got {kind!r}")
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    return cls(**fields)


def as_job(job: Job | Mapping[str, Any]) -> Job:
    return job if isinstance(job, (RunJob, TestJob)) else job_from_dict(job)
