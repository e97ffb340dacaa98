"""Whole-file mode (``mode="file"``): check a prover's output as provers write it.

DeepSeek-Prover-V2, Goedel-Prover and Kimina-Prover answer with a whole Lean file:
imports, ``open``/``set_option`` lines, helper lemmas, then the theorem with its
statement and proof. In file mode such a file is accepted when:

- :func:`precheck` (``mode="file"``) passes: helper ``theorem``/``lemma``/``def``
  declarations are allowed, everything else it refuses stays refused (macros,
  notation, ``axiom``, ``#`` commands, ``native_decide``, ``implemented_by``, debug
  options, other declarations and scopes, ...). Leading ``import`` lines are dropped
  when the header already imports those modules (the REPL loads the header once);
  any other ``import`` is refused;
- the target theorem (the reference statement's name) is declared exactly once, with
  ``theorem`` or ``lemma``, and its statement equals the reference statement after
  :func:`normalize_statement` (comments removed, whitespace runs collapsed to one
  space, no space kept next to a bracket or comma);
- no helper declares a name the statement uses, so a helper cannot change what the
  statement means.

The source sent is the file followed by ``#print axioms <target>``; the verdict then
requires that line to list only the standard axioms, which covers every helper the
target's proof uses.
"""

from __future__ import annotations

import re

from rlkit.rewards.lean.precheck import (
    HELPER_DECLARATIONS,
    precheck,
    strip_trailing_sorry,
    theorem_name_of,
    without_comments,
)

MODES = ("proof", "file")

_BLOCKS = re.compile(r"```(?:lean4?|Lean4?)?[ \t]*\n(.*?)```", re.DOTALL)
_DECLARATION = re.compile(rf"(?<![\w'!?.])({'|'.join(HELPER_DECLARATIONS)})\s+([^\s:({{\[⦃]+)")
_IDENTIFIER = re.compile(r"[^\W\d][\w'!?.]*")
_BRACKETED = re.compile(r" ?([()\[\]{}⟨⟩,]) ?")
_TRAILING_ASSIGN = re.compile(r"\s*:=\s*(?:by)?\s*$")


def extract_file(completion: str) -> str:
    """The Lean file in a model's completion: its last ```lean block, else all of it."""
    blocks = _BLOCKS.findall(completion)
    return blocks[-1] if blocks else completion


def normalize_statement(text: str) -> str:
    """``text`` without comments, whitespace runs collapsed to one space, and no space next to
    ``( ) [ ] { } ⟨ ⟩ ,``: ``theorem t (n: ℕ)\\n  : n = n`` and ``theorem t ( n: ℕ ) : n = n`` agree."""
    squashed = " ".join(without_comments(text).split())
    return _BRACKETED.sub(r"\1", squashed)


def drop_header_imports(file: str, header: str) -> str:
    """``file`` without its leading ``import`` lines whose modules the header imports already."""
    imported = {m for line in header.splitlines() if line.split()[:1] == ["import"] for m in line.split()[1:]}
    lines = file.split("\n")
    for i, line in enumerate(lines):
        words = line.split()
        if not words or line.lstrip().startswith("--"):
            continue
        if words[0] == "import" and len(words) > 1 and set(words[1:]) <= imported:
            lines[i] = ""
            continue
        break
    return "\n".join(lines)


def check_file(file: str, *, statement: str, theorem_name: str) -> str | None:
    """None when ``file`` (header imports already dropped) may be sent, else why it is refused."""
    refused = precheck(file, mode="file")
    if refused is not None:
        return refused
    code = without_comments(file)
    declared = [(m.group(1), m.group(2), m.start()) for m in _DECLARATION.finditer(code)]
    targets = [d for d in declared if d[1] == theorem_name]
    if len(targets) != 1:
        return f"declares the target theorem '{theorem_name}' {len(targets)} times (expected once)"
    keyword, _, start = targets[0]
    if keyword == "def":
        return f"declares the target '{theorem_name}' with def (expected theorem or lemma)"
    reference = _signature(statement)
    if reference is None:
        return "the reference statement declares no theorem"
    written = normalize_statement(code[start:]).split(" ", 1)[1]  # from the name on
    rest = written[len(reference):] if written.startswith(reference) else None
    if rest is None or not rest.lstrip().startswith(":="):
        return f"the statement of '{theorem_name}' differs from the reference statement"
    used = set()
    for token in _IDENTIFIER.findall(reference):
        used.update({token, token.rsplit(".", 1)[-1]})
    for _, name, _ in declared:
        if name != theorem_name and (name in used or name.rsplit(".", 1)[-1] in used):
            return f"helper '{name}' has a name the statement uses"
    return None


def _signature(statement: str) -> str | None:
    """The reference statement from its theorem name to before ``:=``, normalized."""
    text = normalize_statement(_TRAILING_ASSIGN.sub("", strip_trailing_sorry(statement)))
    name = theorem_name_of(text)
    if name is None:
        return None
    match = re.search(rf"(?:theorem|lemma)\s+{re.escape(name)}(?![\w'!?.])", text)
    return text[match.start():].split(" ", 1)[1] if match else None


def build_file_command(file: str, *, theorem_name: str) -> str:
    """The source sent after the header in file mode: the file, then ``#print axioms``."""
    return f"{file.strip()}\n\n#print axioms {theorem_name}"
