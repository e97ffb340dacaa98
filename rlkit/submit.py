"""``rlkit submit``: run a training config as a job on a Ray cluster (Ray Jobs API).

The config is validated here first, so a broken key fails before anything is
sent. The project folder is shipped as the job's ``working_dir`` (so the
config, user reward modules and an uninstalled rlkit travel with it); the
cluster's nodes need rlkit's dependencies installed. Inside the job,
``ray.init`` joins the cluster through ``RAY_ADDRESS``.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from rlkit.config import load_config

DEFAULT_EXCLUDES = [".venv", "runs", ".git", "__pycache__", "*.pyc", "benchmarks/out"]


def submit_job(
    config: str,
    overrides: list[str],
    *,
    address: str,
    working_dir: str = ".",
    print_config: bool = False,
    job_id: str | None = None,
    python: str = "python",
    agent_wait_s: float = 60.0,
) -> str:
    """Submit ``rlkit train CONFIG OVERRIDES`` to the cluster at ``address`` (its dashboard URL).

    ``python`` is the interpreter the job runs on the cluster (one with rlkit's dependencies).
    """
    from ray.job_submission import JobSubmissionClient

    cfg = load_config(config, overrides=overrides)  # fail here, not on the cluster
    root = Path(working_dir).resolve()
    try:
        config_arg = str(Path(config).resolve().relative_to(root))
    except ValueError:
        raise ValueError(f"config {config} must lie inside the working_dir {root}, which is what the job receives") from None
    args = [python, "-m", "rlkit", "train", config_arg, *overrides] + (["--print-config"] if print_config else [])
    client = JobSubmissionClient(address)
    # A head node that has just started answers before its job agent is up.
    deadline = time.monotonic() + agent_wait_s
    while True:
        try:
            return client.submit_job(
                entrypoint=shlex.join(args),
                runtime_env={"working_dir": str(root), "excludes": DEFAULT_EXCLUDES},
                submission_id=job_id,
                metadata={"rlkit_run": cfg.name},
            )
        except RuntimeError as err:
            if "No available agent" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def wait_for_job(address: str, job_id: str, *, timeout_s: float | None = None, poll_s: float = 2.0) -> tuple[str, str]:
    """Poll until the job ends; returns (final status, its logs)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(address)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        status = client.get_job_status(job_id)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            return str(status.value), client.get_job_logs(job_id)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {status.value} after {timeout_s} s")
        time.sleep(poll_s)
