"""`rlkit submit` against a real local Ray cluster (started with `ray start --head`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node in its own process group; only that group is stopped afterwards
    (`ray stop` would also kill the Ray instance other tests in this process use)."""
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    dashboard = _free_port()
    temp_dir = tmp_path_factory.mktemp("ray")
    # A local test cluster on loopback: no token auth (Ray 2.5x+ enables it for `ray start` by default).
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", "--num-cpus=1", "--include-dashboard=true",
         f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1", f"--port={_free_port()}",
         f"--temp-dir={temp_dir}", "--disable-usage-stats",
         # Other tests in this process run a local Ray on the default agent ports.
         f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
         f"--metrics-export-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_dashboard(url, timeout_s=180)
        yield url
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            try:
                head.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                continue
        _kill_leftovers(temp_dir)


def _wait_for_dashboard(url: str, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"Ray dashboard at {url} did not come up in {timeout_s} s")


def _kill_leftovers(temp_dir) -> None:
    """Processes of this cluster that left the group (they carry its temp dir in argv)."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        if any(str(temp_dir) in part for part in proc.info.get("cmdline") or []):
            proc.kill()


def test_submit_runs_the_config_on_the_cluster(cluster):
    from rlkit.submit import submit_job, wait_for_job

    job_id = submit_job("examples/arithmetic_grpo.yaml", ["trainer.total_steps=3"], address=cluster,
                        print_config=True, python=sys.executable)
    status, logs = wait_for_job(cluster, job_id, timeout_s=300)
    assert status == "SUCCEEDED", logs
    assert "total_steps: 3" in logs and "name: arithmetic_grpo" in logs


def test_submit_rejects_a_broken_config_before_sending(cluster):
    from rlkit.config import ConfigError
    from rlkit.submit import submit_job

    with pytest.raises(ConfigError, match="trainer.total_stepz: unknown key"):
        submit_job("examples/arithmetic_grpo.yaml", ["trainer.total_stepz=3"], address=cluster)
