"""The envs tests use the Lean replay fixtures of the reward tests."""

from tests.rewards.conftest import lean_fixtures, replay  # noqa: F401
