"""Refuse proof text that could fake a proof, before Lean runs; assemble what is sent.

The proof is appended to a fixed statement, so any command in it (a new
declaration, ``#exit``, a macro redefining ``#print``) runs after the theorem and
can only serve to hide or forge the verdict. In whole-file mode (``mode="file"``,
see :mod:`rlkit.rewards.lean.whole_file`) helper ``theorem``/``lemma``/``def``
declarations are allowed; every other rule holds. The scan is lexical and strict.
Comments (``--``, nested ``/- -/``) are skipped only when the proof has no string
literal or ``«»`` identifier, the two places where Lean and a simple comment
stripper could disagree about what is code; otherwise everything is scanned.
"""

from __future__ import annotations

import re

_ID = r"[\w'!?]"  # characters that continue a Lean identifier
_ALLOWED_OPTIONS = frozenset(
    {"maxHeartbeats", "maxRecDepth", "synthInstance.maxHeartbeats", "synthInstance.maxSize"}
)


def _words(*words: str, after_dot: bool = False) -> re.Pattern[str]:
    """Whole-token matches of ``words``; a keyword right after ``.`` is part of a name
    (``Foo.def``), while a dangerous identifier is caught qualified too (``Lean.ofReduceBool``)."""
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    before = r"[\w'!?]" if after_dot else r"[\w'!?.]"
    return re.compile(rf"(?<!{before})(?:{alternatives})(?!{_ID})")


_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (_words("sorry", "admit"), "contains sorry/admit"),
    (_words("sorryAx", after_dot=True), "contains sorry/admit"),
    (re.compile(r"#[A-Za-z_]\w*"), "runs a `#` command (#eval, #exit, #print, ...)"),
    (_words("import"), "imports are fixed by the header"),
    (_words("axiom", "axioms"), "declares an axiom"),
    (_words("implemented_by", "extern", "csimp"), "overrides compiled code (@[implemented_by]/@[extern]/@[csimp])"),
    (_words("native_decide", "ofReduceBool", "trustCompiler", after_dot=True), "trusts the compiler (native_decide)"),
    (_words("unsafe"), "uses unsafe code"),
    (_words("unsafeCast", "unsafeIO", "unsafeBaseIO", after_dot=True), "uses unsafe code"),
    (_words("skipKernelTC", "debug", after_dot=True), "touches debug options (debug.skipKernelTC)"),
    (
        _words(
            "macro", "macro_rules", "syntax", "notation", "infix", "infixl", "infixr", "prefix", "postfix",
            "elab", "elab_rules", "declare_syntax_cat", "binder_predicate", "simproc", "dsimproc",
        ),
        "redefines syntax, notation or tactics",
    ),
    (_words("run_cmd", "run_tac", "run_elab", "run_meta", "by_elab", "initialize", "builtin_initialize"),
     "runs metaprograms or IO"),
    (_words("IO", "System", "EIO", "BaseIO", after_dot=True), "uses IO"),
)  # fmt: skip

HELPER_DECLARATIONS = ("theorem", "lemma", "def")  # what file mode allows besides the target theorem
_OTHER_DECLARATIONS = (
    "instance", "example", "abbrev", "opaque", "structure", "inductive", "class", "namespace", "section", "end",
    "mutual", "universe", "variable", "attribute", "export",
)  # fmt: skip
_DECLARES = "starts a new declaration or scope (the theorem statement is fixed)"
_MODE_RULES = {
    "proof": _RULES + ((_words(*HELPER_DECLARATIONS, *_OTHER_DECLARATIONS), _DECLARES),),
    "file": _RULES + ((_words(*_OTHER_DECLARATIONS), _DECLARES),),
}

_SET_OPTION = re.compile(r"(?<![\w'!?.])set_option\s+([^\s]+)")


def precheck(proof: str, *, max_chars: int = 100_000, mode: str = "proof") -> str | None:
    """None when ``proof`` may be sent to Lean, else why it is refused.

    ``mode="file"`` (a whole Lean file, see :mod:`rlkit.rewards.lean.whole_file`) also allows
    ``theorem``/``lemma``/``def`` declarations; every other rule holds in both modes.
    """
    if mode not in _MODE_RULES:
        raise ValueError(f"precheck mode must be one of {sorted(_MODE_RULES)}, got {mode!r}")
    if not isinstance(proof, str):
        return f"proof must be a str, got {type(proof).__name__}"
    if not proof.strip():
        return "empty proof"
    if len(proof) > max_chars:
        return f"proof is {len(proof)} characters (limit {max_chars})"
    if "\x00" in proof:
        return "proof contains a NUL character"
    try:
        proof.encode("utf-8")
    except UnicodeEncodeError:
        return "proof is not valid Unicode text (lone surrogates)"
    code = without_comments(proof)
    for option in _SET_OPTION.findall(code):
        if option not in _ALLOWED_OPTIONS:
            return f"sets option {option!r} (allowed: {', '.join(sorted(_ALLOWED_OPTIONS))})"
    for pattern, reason in _MODE_RULES[mode]:
        match = pattern.search(code)
        if match:
            return f"{reason}: {match.group(0)!r}"
    return None


def without_comments(proof: str) -> str:
    """``proof`` with Lean comments removed, or unchanged if it has ``"`` or ``«`` (see module doc)."""
    if '"' in proof or "«" in proof:
        return proof
    out: list[str] = []
    i, n = 0, len(proof)
    while i < n:
        if proof.startswith("--", i):
            end = proof.find("\n", i)
            i = n if end < 0 else end
        elif proof.startswith("/-", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if proof.startswith("/-", i):
                    depth, i = depth + 1, i + 2
                elif proof.startswith("-/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" ")
        else:
            out.append(proof[i])
            i += 1
    return "".join(out)


_THEOREM_NAME = re.compile(
    r"^\s*(?:@\[[^\]]*\]\s*)*(?:(?:private|protected|noncomputable|nonrec)\s+)*(?:theorem|lemma)\s+([^\s:({\[⦃]+)",
    re.MULTILINE,
)


def theorem_name_of(statement: str) -> str | None:
    """The name declared by ``theorem``/``lemma`` in ``statement``, or None."""
    match = _THEOREM_NAME.search(statement)
    return match.group(1) if match else None


def strip_trailing_sorry(statement: str) -> str:
    """``theorem t : P := by sorry`` -> ``theorem t : P := by`` (datasets ship statements that way)."""
    return re.sub(r"\s*\bsorry\s*$", "", statement)


def build_command(statement: str, proof: str, *, theorem_name: str) -> str:
    """The Lean source sent after the header: statement, proof, then ``#print axioms``.

    A tactic proof written at column 0 after a statement ending in ``by`` is
    indented by two spaces (Lean >= v4.28 rejects column-0 tactic blocks).
    """
    statement = statement.rstrip()
    body = proof.strip("\n")
    lines = body.split("\n")
    if statement.endswith("by") and min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=1) == 0:
        body = "\n".join(f"  {x}" if x.strip() else x for x in lines)
    return f"{statement}\n{body}\n\n#print axioms {theorem_name}"


def extract_proof(completion: str, *, statement: str) -> str:
    """The proof in a model's completion: the last ```lean block (else all of it), after the
    statement when the model repeated it (compared ignoring whitespace)."""
    blocks = re.findall(r"```(?:lean4?|Lean4?)?[ \t]*\n(.*?)```", completion, re.DOTALL)
    text = blocks[-1] if blocks else completion
    end = _end_of_repeated(text, "".join(strip_trailing_sorry(statement).split()))
    return text if end is None else text[end:]


def _end_of_repeated(text: str, squashed_statement: str) -> int | None:
    """Index in ``text`` just past its last occurrence of the statement, whitespace ignored (linear time)."""
    if not squashed_statement:
        return None
    positions = [i for i, ch in enumerate(text) if not ch.isspace()]
    found = "".join(text[i] for i in positions).rfind(squashed_statement)
    if found < 0:
        return None
    return positions[found + len(squashed_statement) - 1] + 1
