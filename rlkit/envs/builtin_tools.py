"""Built-in tools: ``python`` (runs in :mod:`rlkit.sandbox`) and ``search`` (BM25 over a local corpus).

``python``: the query is a program (a fenced ```python block is unwrapped); the sandbox kills it at
its own deadline (``PYTHON_LIMITS.time_s``), so the tool is a thread tool whose wait is only a
backstop. It returns stdout, or the last line of stderr (the exception) when the program failed.
The public ARPO code ran model-written code in the trainer's own process with a timeout that was
checked only after the call returned; here it is isolated and bounded.

``search``: Okapi BM25 (``bm25s``) over a JSONL corpus (one object per line, text in
``text_field``) or a ``datasets.save_to_disk`` folder; :func:`configure_search` builds the index
once per process; a query returns the ``top_k`` passages, numbered.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from rlkit.envs.tools import register_tool

PYTHON_TIME_S = 5.0
_FENCE = re.compile(r"^\s*```(?:python|py)?\s*\n(.*?)\n?```\s*$", re.S)
_SANDBOX = None
_SANDBOX_LOCK = threading.Lock()


def _sandbox():
    global _SANDBOX
    with _SANDBOX_LOCK:
        if _SANDBOX is None:
            from rlkit.sandbox import Limits, Sandbox

            _SANDBOX = Sandbox(limits=Limits(time_s=PYTHON_TIME_S, memory_mb=512, output_kb=64, nproc=16))
        return _SANDBOX


def close_python_sandbox() -> None:
    """Stop the python tool's sandbox (its fork servers and their cgroups); the next call starts a new one."""
    global _SANDBOX
    with _SANDBOX_LOCK:
        if _SANDBOX is not None:
            _SANDBOX.close()
            _SANDBOX = None


@register_tool("python", timeout_s=PYTHON_TIME_S + 5.0, max_output_chars=2000, isolation="thread")
def python_tool(query: str) -> str:
    """Run ``query`` as a Python program in the sandbox: stdout, or the last error line."""
    match = _FENCE.match(query)
    code = match.group(1) if match else query.strip("\n")
    res = _sandbox().run(code)
    if res.status == "ok":
        return res.stdout.strip("\n") or "(no output)"
    if res.status == "timeout":
        return f"error: the program ran past {PYTHON_TIME_S:g} s and was stopped"
    last = next((line for line in reversed(res.stderr.strip().splitlines()) if line.strip()), "")
    return f"error: {last or res.status}"


# ------------------------------------------------------------------ search

class SearchIndex:
    """BM25 over passages (Robertson & Zaragoza 2009; ``bm25s``, Lucene scoring variant)."""

    def __init__(self, passages: list[str], *, top_k: int = 3) -> None:
        import bm25s

        if not passages:
            raise ValueError("search corpus is empty")
        self.passages, self.top_k = passages, top_k
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize(passages, stopwords="en", show_progress=False), show_progress=False)

    def search(self, query: str) -> str:
        import bm25s

        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:
            return "no results"
        k = min(self.top_k, len(self.passages))
        docs, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        hits = [(int(d), float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]
        if not hits:
            return "no results"
        return "\n".join(f"({i + 1}) {self.passages[d]}" for i, (d, _) in enumerate(hits))


_INDEXES: dict[tuple, SearchIndex] = {}
_ACTIVE: list[SearchIndex] = []


def load_passages(corpus: str, *, text_field: str = "text") -> list[str]:
    """Passages of a JSONL file or a ``datasets`` folder; a bad row names file:row:field."""
    path = Path(corpus)
    if path.is_dir():
        import datasets

        rows = datasets.load_from_disk(str(path))
        return [str(r[text_field]) for r in rows]
    if not path.is_file():
        raise FileNotFoundError(f"search corpus {corpus!r} does not exist")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
            raise ValueError(f"{corpus}:{n}:{text_field}: expected an object with a string field {text_field!r}")
        out.append(row[text_field])
    return out


def configure_search(corpus: str, *, text_field: str = "text", top_k: int = 3) -> SearchIndex:
    """Build (once per process and arguments) the index the ``search`` tool queries."""
    key = (str(Path(corpus).resolve()), text_field, top_k)
    with _SANDBOX_LOCK:
        index = _INDEXES.get(key)
        if index is None:
            index = _INDEXES[key] = SearchIndex(load_passages(corpus, text_field=text_field), top_k=top_k)
        _ACTIVE[:] = [index]
        return index


@register_tool("search", timeout_s=10.0, max_output_chars=3000, isolation="thread")
def search_tool(query: str) -> str:
    if not _ACTIVE:
        raise RuntimeError("no search corpus configured (env.params.search_corpus)")
    return _ACTIVE[0].search(query.strip())
