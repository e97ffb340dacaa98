"""Wire format between the harness's two processes; runs INSIDE the sandbox (stdlib only, Python 3.8+).

Values cross as JSON text built from exact builtin types only; ``encode``
turns anything else into a handle, and ``decode`` rebuilds values strictly,
raising `ProgramDied` (not an Exception, so a test cannot swallow it) on
anything malformed. Parsing uses the json module's C scanner directly: the
harness starts for every run, and importing ``json`` (and ``re``) costs more
than the rest of its start-up.
"""

try:  # the json module's C core, without the cost of importing json (and re) at every start
    from _json import encode_basestring_ascii as _quote
    from _json import make_scanner as _make_scanner
except ImportError:  # pragma: no cover - interpreters without the accelerator
    from json.decoder import py_scanstring as _unused  # noqa: F401
    from json.encoder import py_encode_basestring_ascii as _quote
    from json.scanner import py_make_scanner as _make_scanner

_MAX_DEPTH = 200
MIRRORED_MODULES = frozenset(
    "math cmath random re string itertools functools collections heapq bisect operator typing "
    "fractions decimal statistics datetime copy json hashlib sys os array calendar textwrap "
    "unicodedata numbers enum dataclasses".split()
)


class ProgramDied(BaseException):
    """The program process exited or broke the protocol; not an Exception, so tests cannot catch it."""


# ---------------------------------------------------------------- JSON text


class _ScanContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo = {}

    @staticmethod
    def parse_constant(name):
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _make_scanner(_ScanContext())
_INF = float("inf")


def loads(text):
    """Parse one JSON document from text or UTF-8 bytes (ValueError on anything else)."""
    if type(text) is bytes:
        text = text.decode("utf-8")
    text = text.strip()
    try:
        value, end = _scan(text, 0)
    except (StopIteration, RecursionError) as e:
        raise ValueError("invalid JSON") from e
    finally:
        _ScanContext.memo.clear()
    if end != len(text):
        raise ValueError("trailing data after JSON")
    return value


def dumps(obj):
    """JSON text of a value built from None, bool, int, float, str, list and str-keyed dict."""
    t = type(obj)
    if obj is None:
        return "null"
    if t is bool:
        return "true" if obj else "false"
    if t is int:
        return int.__repr__(obj)
    if t is float:
        if obj != obj:
            return "NaN"
        if obj == _INF or obj == -_INF:
            return "Infinity" if obj > 0 else "-Infinity"
        return float.__repr__(obj)
    if t is str:
        return _quote(obj)
    if t is list:
        return "[" + ",".join([dumps(v) for v in obj]) + "]"
    if t is dict:
        return "{" + ",".join([_quote(k) + ":" + dumps(v) for k, v in obj.items()]) + "}"
    raise TypeError("cannot serialize %s" % t.__name__)


# ---------------------------------------------------------------- value encoding


class Budget(Exception):
    pass


def encode(value, handles, budget=None, depth=0):
    """JSON-ready form of ``value``; objects that are not exact builtins become handles."""
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise Budget
    t = type(value)
    if value is None or t is bool or t is str or t is float:
        return value
    if t is int:
        return value if value.bit_length() < 10000 else {"i": hex(value)}
    if depth < _MAX_DEPTH:
        if t is list:
            return [encode(v, handles, budget, depth + 1) for v in value]
        if t is tuple:
            return {"t": [encode(v, handles, budget, depth + 1) for v in value]}
        if t is dict:
            return {
                "d": [
                    [encode(k, handles, budget, depth + 1), encode(v, handles, budget, depth + 1)]
                    for k, v in value.items()
                ]
            }
        if t is set or t is frozenset:
            return {"s" if t is set else "f": [encode(v, handles, budget, depth + 1) for v in value]}
    if t is bytes:
        return {"b": value.hex()}
    if t is bytearray:
        return {"B": value.hex()}
    if t is complex:
        return {"c": [value.real, value.imag]}
    if handles is None:
        raise TypeError("a %s cannot be passed to the program under test" % t.__name__)
    return handles(value)


def decode(obj, remote):
    """Rebuild a value from ``encode``'s form; ``remote(id, name)`` makes proxies for handles."""
    t = type(obj)
    if obj is None or t is bool or t is int or t is float or t is str:
        return obj
    if t is list:
        return [decode(v, remote) for v in obj]
    if t is dict and len(obj) == 1:
        ((tag, body),) = obj.items()
        if tag in _TAGS:
            try:
                return _TAGS[tag](body, remote)
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
    elif t is dict and "h" in obj and type(obj["h"]) is int and set(obj) <= {"h", "n", "m"}:
        if obj.get("m") in MIRRORED_MODULES:
            return __import__(obj["m"])
        return remote(obj["h"], str(obj.get("n", "object")))
    raise ProgramDied("malformed value from the program: %.200r" % (obj,))


_TAGS = {
    "t": lambda body, remote: tuple(decode(v, remote) for v in body),
    "d": lambda body, remote: {decode(k, remote): decode(v, remote) for k, v in body},
    "s": lambda body, remote: {decode(v, remote) for v in body},
    "f": lambda body, remote: frozenset(decode(v, remote) for v in body),
    "b": lambda body, remote: bytes.fromhex(body),
    "B": lambda body, remote: bytearray.fromhex(body),
    "c": lambda body, remote: complex(float(body[0]), float(body[1])),
    "i": lambda body, remote: int(body, 16),
}
