"""Result objects: `ExecResult` (one program run) and `TestReport` (a test suite).

Both convert to and from plain dicts so the HTTP service and the in-process
sandbox return the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, get_args

Status = Literal["ok", "runtime_error", "timeout", "memory_limit", "output_limit", "compile_error", "sandbox_error"]
TestStatus = Literal[
    "passed",
    "failed",
    "error",
    "timeout",
    "memory_limit",
    "output_limit",
    "runtime_error",
    "compile_error",
    "sandbox_error",
    "not_run",
]
STATUSES: tuple[str, ...] = get_args(Status)
TEST_STATUSES: tuple[str, ...] = get_args(TestStatus)


@dataclass(frozen=True)
class ExecResult:
    """How one program run ended.

    ``returncode`` is the exit status, or minus the signal number when a signal
    killed the program; None when it never started. ``time_s`` is wall time,
    ``cpu_s`` user+system CPU of the processes that exited, ``memory_mb`` the
    peak resident memory (of the whole tree when a cgroup measured it).
    """

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    time_s: float
    cpu_s: float = 0.0
    memory_mb: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"ExecResult.status must be one of {STATUSES}, got {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecResult:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class TestResult:
    """One test case: ``passed`` only when the harness positively saw it pass."""

    __test__ = False  # not a pytest test class

    index: int
    passed: bool
    status: TestStatus
    message: str = ""
    time_s: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in TEST_STATUSES:
            raise ValueError(f"TestResult.status must be one of {TEST_STATUSES}, got {self.status!r}")
        if self.passed != (self.status == "passed"):
            raise ValueError(f"TestResult.passed={self.passed} contradicts status {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestResult:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class TestReport:
    """A test suite's outcome.

    ``status`` is the status of the run as a whole (``ok`` when every program
    run ended normally, else the first abnormal one); ``runs`` holds the
    underlying program runs (the compile step first, for compiled languages).
    """

    __test__ = False  # not a pytest test class

    passed: int
    total: int
    results: list[TestResult]
    status: Status = "ok"
    runs: list[ExecResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.total != len(self.results):
            raise ValueError(f"TestReport.total={self.total} but {len(self.results)} results")
        if self.passed != sum(r.passed for r in self.results):
            raise ValueError("TestReport.passed does not match the per-test results")

    @property
    def all_passed(self) -> bool:
        return self.total > 0 and self.passed == self.total

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "total": self.total,
            "status": self.status,
            "results": [r.to_dict() for r in self.results],
            "runs": [r.to_dict() for r in self.runs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestReport:
        return cls(
            passed=data["passed"],
            total=data["total"],
            status=data["status"],
            results=[TestResult.from_dict(r) for r in data["results"]],
            runs=[ExecResult.from_dict(r) for r in data["runs"]],
        )


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    names = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}")
    return dict(data)
