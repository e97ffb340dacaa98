"""A local Ray for the cluster tests (joined if another test started one)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_ray():
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()
