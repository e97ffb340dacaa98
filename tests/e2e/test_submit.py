"""`rlkit submit` against a real local Ray cluster (started with `ray start --head`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    dashboard = _free_port()
    temp_dir = tmp_path_factory.mktemp("ray")
    # A local test cluster on loopback: no token auth (Ray 2.5x+ enables it for `ray start` by default).
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
    subprocess.run(
        [ray_bin, "start", "--head", "--num-cpus=1", "--include-dashboard=true", f"--dashboard-port={dashboard}",
         "--dashboard-host=127.0.0.1", f"--port={_free_port()}", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        check=True, capture_output=True, env=env, timeout=180,
    )
    try:
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_submit_runs_the_config_on_the_cluster(cluster):
    from rlkit.submit import submit_job, wait_for_job

    job_id = submit_job("examples/arithmetic_grpo.yaml", ["trainer.total_steps=3"], address=cluster, print_config=True)
    status, logs = wait_for_job(cluster, job_id, timeout_s=300)
    assert status == "SUCCEEDED", logs
    assert "total_steps: 3" in logs and "name: arithmetic_grpo" in logs


def test_submit_rejects_a_broken_config_before_sending(cluster):
    from rlkit.config import ConfigError
    from rlkit.submit import submit_job

    with pytest.raises(ConfigError, match="trainer.total_stepz: unknown key"):
        submit_job("examples/arithmetic_grpo.yaml", ["trainer.total_stepz=3"], address=cluster)
