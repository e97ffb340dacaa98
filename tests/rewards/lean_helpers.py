"""Helpers for the Lean checker tests: recorded reply text and replay logs."""

from __future__ import annotations

import json
from pathlib import Path


def reply_text(fixture: dict) -> str:
    """The exact recorded reply bytes, or the reply pretty-printed as the REPL does (constructed lines)."""
    return fixture.get("response_text") or json.dumps(fixture["response"], indent=1, ensure_ascii=False)


def read_log(log: Path) -> list[dict]:
    """What a replay process received: ``{"start": pid}`` markers and requests, in order."""
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
