"""The `code_tests` reward: program extraction, test formats, scoring, per-case info."""

from __future__ import annotations

import pytest
from conftest import requires_bwrap

from rlkit.rewards import RewardResult, get_reward
from rlkit.rewards.code import extract_program, sample_tests
from rlkit.rewards.registry import check_params
from rlkit.rewards.samples import RewardInputError

ADD = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module", autouse=True)
def _close_shared_sandboxes():
    """The reward keeps harnesses warm in its shared sandbox; stop them after this module."""
    yield
    import rlkit.rewards.code as code

    for sb in code._sandboxes.values():
        if hasattr(sb, "close"):
            sb.close()


def fenced(code: str, tag: str = "python") -> str:
    return f"```{tag}\n{code.rstrip()}\n```"


# ---------------------------------------------------------------- extraction (no sandbox needed)


def test_extraction_prefers_blocks_of_the_language():
    completion = (
        f"Try this:\n{fenced('print(1)')}\nor rather\n{fenced('int main(){}', 'cpp')}\n{fenced('print(2)', '')}\nDone."
    )
    assert extract_program(completion, language="python") == "print(2)\n"
    assert extract_program("```py\nx = 1\n  ```\n", language="python") == "x = 1\n"  # indented closing fence
    assert extract_program(completion, language="python", extract="first_block") == "print(1)\n"
    assert extract_program(completion, language="cpp") == "print(2)\n"  # untagged blocks count for any language
    assert extract_program(fenced("int main(){}", "c++"), language="cpp") == "int main(){}\n"
    assert extract_program("no code here", language="python") is None
    assert extract_program("raw = 1", language="python", extract="whole") == "raw = 1"
    longest = fenced("x = 1\n") + "\n" + fenced("y = 2\nz = 3\n")
    assert extract_program(longest, language="python", extract="longest_block") == "y = 2\nz = 3\n"


def test_sample_test_formats():
    assert sample_tests({"tests": ["assert f()"]}) == (["assert f()"], "assert")
    assert sample_tests({"tests": [{"input": "1", "output": "2", "extra": 0}]}) == (
        [{"input": "1", "output": "2"}],
        "stdio",
    )
    tests, mode = sample_tests({"test": "def check(candidate):\n    assert candidate(1)\n", "entry_point": "f"})
    assert mode == "assert" and tests[0].endswith("check(f)\n")
    for bad in ({"tests": []}, {"tests": "assert 1"}, {"tests": ["assert 1", {"input": "", "output": ""}]}, {}):
        with pytest.raises(RewardInputError):
            sample_tests(bad)


def test_parameters_are_checked_by_the_registry():
    assert check_params("code_tests", {"scoring": "fraction", "time_s": 3}) == {"scoring": "fraction", "time_s": 3}
    with pytest.raises(ValueError, match="timeout"):
        check_params("code_tests", {"timeout": 3})


# ---------------------------------------------------------------- scoring in the sandbox


@requires_bwrap
def test_all_or_nothing_and_fraction_scoring():
    reward = get_reward("code_tests")
    sample = {"tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 5", "assert add(0, 0) == 0"]}
    all_result = reward(fenced(ADD), sample)
    assert isinstance(all_result, RewardResult) and all_result.score == 0.0 and all_result.error is None
    assert all_result.info["passed"] == 2 and all_result.info["total"] == 3
    assert [c["status"] for c in all_result.info["cases"]] == ["passed", "failed", "passed"]
    assert all_result.info["cases"][1]["message"] == "AssertionError at line 1: assert add(2, 2) == 5"
    assert reward(fenced(ADD), sample, scoring="fraction").score == pytest.approx(2 / 3)
    assert reward(fenced(ADD), {"tests": sample["tests"][::2]}).score == 1.0


@requires_bwrap
def test_stdio_tests_in_python_and_cpp():
    reward = get_reward("code_tests")
    sample = {"tests": [{"input": "2 3\n", "output": "5\n"}, {"input": "10 -4", "output": "6"}]}
    assert reward(fenced("a, b = map(int, input().split())\nprint(a + b)\n"), sample).score == 1.0
    cpp = '#include <cstdio>\nint main() { long a, b; scanf("%ld %ld", &a, &b); printf("%ld\\n", a + b); }\n'
    result = reward(fenced(cpp, "cpp"), {**sample, "language": "cpp"})
    assert result.score == 1.0 and result.info["language"] == "cpp" and result.info["mode"] == "stdio"


@requires_bwrap
def test_humaneval_row_with_a_body_only_completion():
    reward = get_reward("code_tests")
    row = {
        "prompt": 'def double(x):\n    """Twice x."""\n',
        "test": "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(-1) == -2\n",
        "entry_point": "double",
    }
    assert reward("    return 2 * x\n", row, extract="whole", prefix_key="prompt").score == 1.0
    assert reward("    return x + 2\n", row, extract="whole", prefix_key="prompt").score == 0.0


@requires_bwrap
def test_missing_code_and_hacks_score_zero():
    reward = get_reward("code_tests")
    sample = {"tests": ["assert add(1, 2) == 3"]}
    missing = reward("I would add them.", sample)
    assert missing.score == 0.0 and missing.info["extracted"] is False
    assert reward(fenced("import sys\nsys.exit(0)\n" + ADD), sample).score == 0.0
    assert reward(fenced("print('ALL TESTS PASSED')\nimport os\nos._exit(0)\n"), sample).score == 0.0


@requires_bwrap
def test_assert_tests_for_cpp_are_an_input_error():
    with pytest.raises(RewardInputError, match="assert-style tests need language 'python'"):
        get_reward("code_tests")(fenced("int main(){}", "cpp"), {"tests": ["assert True"], "language": "cpp"})


@requires_bwrap
def test_sandbox_failure_is_an_error_not_a_score(monkeypatch):
    import rlkit.rewards.code as code

    class Broken:
        def run_tests(self, *args, **kwargs):
            from rlkit.sandbox import ExecResult, TestReport, TestResult

            run = ExecResult(
                status="sandbox_error", returncode=None, stdout="", stderr="bwrap: no permission", time_s=0
            )
            results = [TestResult(index=0, passed=False, status="sandbox_error")]
            return TestReport(passed=0, total=1, results=results, status="sandbox_error", runs=[run])

    monkeypatch.setitem(code._sandboxes, ("bwrap", None), Broken())
    result = get_reward("code_tests")(fenced(ADD), {"tests": ["assert add(1, 2) == 3"]})
    assert result.score == 0.0 and result.error == "sandbox error: bwrap: no permission"
