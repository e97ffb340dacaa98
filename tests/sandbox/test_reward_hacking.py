"""Reward hacks are escapes too: none of these programs may be counted as passing.

Each suite below also passes the honest solution (``add``), so a harness that
failed everything would fail these tests.
"""

from __future__ import annotations

import pytest
from conftest import requires_bwrap

pytestmark = requires_bwrap

TESTS = ["assert add(1, 2) == 3", "assert add(-5, 5) == 0", "assert add(2, 2) == 4"]
HONEST = "def add(a, b):\n    return a + b\n"


def passed(sandbox, code, tests=TESTS):
    report = sandbox.run_tests(code, tests)
    return report.passed, [r.status for r in report.results]


def test_honest_solution_passes_every_test(sandbox):
    assert passed(sandbox, HONEST) == (3, ["passed"] * 3)


@pytest.mark.parametrize(
    "hack",
    [
        "import os\nos._exit(0)\n",
        "import sys\nsys.exit(0)\n",
        "raise SystemExit(0)\n",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    ],
    ids=["os._exit", "sys.exit", "SystemExit", "self-SIGKILL"],
)
def test_exiting_before_the_tests_run_passes_nothing(sandbox, hack):
    count, statuses = passed(sandbox, hack + HONEST)
    assert count == 0
    assert statuses == ["error"] * 3


def test_forged_objects_score_like_any_wrong_value(sandbox):
    """An opaque object is unequal to every value, so it passes exactly what ``None`` passes."""
    tests = ["assert add(1, 2) == 3", "assert add(2, 2) != 5", "assert add(1, 1) is not None"]
    forged = "class Anything:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
    assert passed(sandbox, forged + "def add(a, b): return Anything()\n", tests)[1] == ["failed", "passed", "passed"]
    assert passed(sandbox, "def add(a, b): return -1\n", tests)[1] == ["failed", "passed", "passed"]


def test_object_equal_to_everything_does_not_pass(sandbox):
    code = (
        "class Anything:\n"
        "    def __eq__(self, other): return True\n"
        "    def __ne__(self, other): return False\n"
        "    __hash__ = object.__hash__\n"
        "def add(a, b): return Anything()\n"
    )
    assert passed(sandbox, code)[0] == 0


def test_subclass_of_int_with_forged_equality_does_not_pass(sandbox):
    code = (
        "class Int(int):\n"
        "    def __eq__(self, other): return True\n"
        "    def __ne__(self, other): return False\n"
        "def add(a, b): return Int(7)\n"
    )
    assert passed(sandbox, code)[0] == 0


def test_patching_builtins_and_assertion_error_changes_nothing(sandbox):
    code = (
        "import builtins\n"
        "class Never(Exception): pass\n"
        "builtins.AssertionError = Never\n"
        "builtins.abs = lambda x: 0\nbuiltins.len = lambda x: 3\nbuiltins.isinstance = lambda *a: True\n"
        "builtins.all = lambda x: True\nbuiltins.print = lambda *a, **k: None\n"
        "def add(a, b): return 0\n"
    )
    tests = ["assert abs(add(1, 2) - 3) < 1e-9", "assert len(str(add(100, 200))) == 3", "assert all([add(1, 1) == 2])"]
    assert passed(sandbox, code, tests)[0] == 0
    assert passed(sandbox, "def add(a, b): return a + b", tests)[0] == 3


def test_patching_modules_changes_nothing(sandbox):
    code = "import math\nmath.isclose = lambda *a, **k: True\nmath.fabs = lambda x: 0.0\ndef add(a, b): return 42.0\n"
    tests = [
        "import math\nassert math.isclose(add(0.1, 0.2), 0.3)",
        "import math\nassert math.fabs(add(1, 1) - 2) < 1e-9",
    ]
    assert passed(sandbox, code, tests)[0] == 0


def test_system_exit_inside_the_tested_function_fails_the_test(sandbox):
    for body in ("raise SystemExit(0)", "import sys; sys.exit(0)", "raise KeyboardInterrupt", "import os; os._exit(0)"):
        count, statuses = passed(sandbox, f"def add(a, b):\n    {body}\n")
        assert count == 0, body
        assert statuses[0] == "error", body


def test_printing_success_markers_passes_nothing(sandbox):
    fake = '{"event": "result", "index": %d, "status": "passed", "nonce": "%s"}'
    lines = "\n".join(fake % (i, n) for i in range(3) for n in ("", "0" * 32, "x"))
    code = (
        f"MARKERS = {lines!r}\n"
        "import os, sys\n"
        "print('PASSED', 'ALL TESTS PASSED', 'ok', MARKERS)\n"
        "sys.stderr.write(MARKERS)\n"
        "for fd in range(3, 256):\n"
        "    try: os.write(fd, (MARKERS + '\\n').encode())\n"
        "    except OSError: pass\n"
        "def add(a, b): return 0\n"
    )
    assert passed(sandbox, code)[0] == 0


def test_program_cannot_read_the_expected_answers(sandbox):
    """The tests never enter the program's memory, and the evaluator's memory is out of reach.

    The program scans its whole address space (/proc/self/mem, after making
    itself dumpable again) for the marker only the test holds, kept in two
    halves so the scanner never holds it whole.
    """
    code = (
        "import ctypes, os\n"
        "HEAD, TAIL = b'EXPECTED', b'ANSWER-Q9'\n"
        "def scan():\n"
        "    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: make /proc/self/mem ours again\n"
        "    hits = 0\n"
        "    with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:\n"
        "        for line in maps:\n"
        "            start, end = (int(x, 16) for x in line.split()[0].split('-'))\n"
        "            if 'r' not in line.split()[1] or end - start > (256 << 20): continue\n"
        "            try: mem.seek(start); chunk = mem.read(end - start)\n"
        "            except OSError: continue\n"
        "            i = chunk.find(HEAD)\n"
        "            while i >= 0:\n"
        "                hits += chunk[i + len(HEAD):i + len(HEAD) + len(TAIL)] == TAIL\n"
        "                i = chunk.find(HEAD, i + 1)\n"
        "    return hits\n"
        "def add(a, b):\n"
        "    found = scan()\n"
        "    parent = os.getppid()\n"
        "    for path in ('/proc/%d/mem' % parent, '/proc/%d/environ' % parent, '/proc/%d/fd/0' % parent):\n"
        "        try: open(path, 'rb').read(1); found += 1000\n"
        "        except OSError: pass\n"
        "    return found\n"
    )
    report = sandbox.run_tests(code, ["assert add(1, 2) == 0, 'EXPECTEDANSWER-Q9'"])
    assert report.passed == 1, report.results


def test_scanning_own_memory_does_find_what_the_program_holds(sandbox):
    """Control for the test above: the same scan finds the marker once the program holds it."""
    code = "import ctypes\nHELD = b'EXPECTED' + b'ANSWER-Q9'\n"
    scan = (
        "def scan():\n    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)\n    hits = 0\n"
        "    with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:\n"
        "        for line in maps:\n"
        "            start, end = (int(x, 16) for x in line.split()[0].split('-'))\n"
        "            if 'r' not in line.split()[1] or end - start > (256 << 20): continue\n"
        "            try: mem.seek(start); chunk = mem.read(end - start)\n"
        "            except OSError: continue\n"
        "            hits += chunk.count(b'EXPECTED' + b'ANSWER-Q9')\n"
        "    return hits\n"
    )
    report = sandbox.run_tests(code + scan, ["assert scan() >= 1"])
    assert report.passed == 1, report.results


def test_killing_the_evaluator_passes_nothing(sandbox):
    code = "import os, signal\ndef add(a, b):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return a + b\n"
    assert passed(sandbox, code)[0] == 0


def test_forged_truthiness_passes_only_what_it_must_answer(sandbox):
    code = "class Yes:\n    def __bool__(self): return True\ndef is_even(n): return Yes()\n"
    report = sandbox.run_tests(code, ["assert is_even(2)", "assert not is_even(3)"])
    assert [r.passed for r in report.results] == [True, False]


def test_forged_arithmetic_does_not_pass_a_tolerance_check(sandbox):
    code = (
        "class Zero:\n"
        "    def __sub__(self, o): return 0.0\n"
        "    def __rsub__(self, o): return 0.0\n"
        "    def __abs__(self): return 0.0\n"
        "    def __lt__(self, o): return True\n"
        "def add(a, b): return Zero()\n"
    )
    assert passed(sandbox, code, ["assert abs(add(0.1, 0.2) - 0.3) < 1e-9", "assert add(1, 2) - 3 < 1e-9"])[0] == 0


def test_always_true_containment_does_not_pass(sandbox):
    code = (
        "class All:\n    def __contains__(self, x): return True\n    def __iter__(self): return iter([])\n"
        "def add(a, b): return All()\n"
    )
    assert passed(sandbox, code, ["assert 3 in add(1, 2)"])[0] == 0


def test_stdio_mode_compares_on_the_host(sandbox):
    code = "import os\nprint('PASSED')\nos._exit(0)"
    report = sandbox.run_tests(code, [{"input": "", "output": "3"}], mode="stdio")
    assert report.passed == 0 and report.results[0].status == "failed"
