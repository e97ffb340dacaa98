"""The envs tests use the Lean replay fixtures of the reward tests."""

import pytest

from tests.rewards.conftest import lean_fixtures, replay  # noqa: F401


@pytest.fixture(scope="module", autouse=True)
def _close_python_tool_sandbox():
    """The python tool keeps one sandbox per process; stop it (fork servers, cgroups) after each module."""
    yield
    from rlkit.envs.builtin_tools import close_python_sandbox

    close_python_sandbox()
