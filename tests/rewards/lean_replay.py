"""A stand-in for the Lean REPL binary in tests: answers recorded requests with recorded bytes.

Usage: ``python lean_replay.py SCRIPT.json``. The script holds ``entries``, each
``{"request": {...}, "action": ..., "reply": "<exact reply text>"}``; a request
is answered by the first unused entry whose request equals it (then by the last
used one). Actions: ``reply`` (write ``reply`` and a blank line), ``hang``
(never answer), ``exit`` (die with status 3, as a crashed REPL), ``garbage``
(write non-JSON), ``eat_memory`` (allocate ``mb`` MiB, then hang). ``default``
(optional) answers requests no entry matches; without it the process writes
the request to stderr and exits with status 2. With ``log``, every request
received is appended to that file as one JSON line, after a ``{"start": pid}`` line.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _requests(stream):
    lines: list[str] = []
    for line in stream:
        if line.strip():
            lines.append(line)
        elif lines:
            yield json.loads("".join(lines))
            lines = []
    if lines:
        yield json.loads("".join(lines))


def _act(entry: dict) -> None:
    action = entry.get("action", "reply")
    if action == "reply":
        sys.stdout.write(entry["reply"] + "\n\n")
        sys.stdout.flush()
    elif action == "garbage":
        sys.stdout.write("this is not JSON\n\n")
        sys.stdout.flush()
    elif action == "exit":
        sys.stderr.write("replay: simulated REPL crash\n")
        sys.stderr.flush()
        os._exit(3)
    elif action == "hang":
        while True:
            time.sleep(3600)
    elif action == "eat_memory":
        hog = bytearray(entry["mb"] * 2**20)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        while True:
            time.sleep(3600)
    else:
        raise ValueError(f"unknown action {action!r}")


def main(script_path: str) -> int:
    with open(script_path, encoding="utf-8") as f:
        script = json.load(f)
    entries = script["entries"]
    used = [False] * len(entries)
    log = open(script["log"], "a", encoding="utf-8") if script.get("log") else None
    if log:
        log.write(json.dumps({"start": os.getpid()}) + "\n")
        log.flush()
    last_match: dict[str, int] = {}
    for request in _requests(sys.stdin):
        if log:
            log.write(json.dumps(request, ensure_ascii=False) + "\n")
            log.flush()
        key = json.dumps(request, sort_keys=True)
        index = next(
            (i for i, e in enumerate(entries) if not used[i] and json.dumps(e["request"], sort_keys=True) == key),
            last_match.get(key),
        )
        if index is None:
            if "default" in script:
                _act(script["default"])
                continue
            sys.stderr.write(f"replay: no recorded reply for {key}\n")
            return 2
        used[index] = True
        last_match[key] = index
        _act(entries[index])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
