"""Where and how a run runs: the SLURM job, array task, host and restart count (for its record, its W&B config
and its sweep outcome), the sweep preset it belongs to, and a SLURM job name that says which run it is.

SLURM tells a job about itself through the environment (SLURM_JOB_ID, SLURM_ARRAY_JOB_ID/_TASK_ID,
SLURM_RESTART_COUNT); outside SLURM the job fields are None and restarts is 0.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
from collections.abc import Mapping

log = logging.getLogger("lora_repro.run")


def where(env: Mapping[str, str] | None = None) -> dict:
    """{job_id, array_task, host, restarts} of this process (the `records.Record` fields of those names)."""
    env = os.environ if env is None else env
    array_job, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    job_id = f"{array_job}_{task}" if array_job and task else env.get("SLURM_JOB_ID")
    restarts = env.get("SLURM_RESTART_COUNT", "0")
    return {"job_id": job_id, "array_task": int(task) if task and task.isdigit() else None,
            "host": socket.gethostname(), "restarts": int(restarts) if restarts.isdigit() else 0}


def preset() -> str | None:
    """The sweep's preset (`+experiment=<preset>`) when the run was launched by the Hydra app, else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:  # pragma: no cover - hydra is a dependency
        return None
    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get("experiment")


def job_label(config: Mapping, run_id: str, sweep: str | None = None) -> str:
    """What `squeue` shows for a running job: preset, model, task, method, seed and run id."""
    name = "/".join(str((config.get(k) or {}).get("name", "?")).replace("/", "-")
                    for k in ("model", "task", "method"))
    return f"{sweep + ':' if sweep else ''}{name}/s{config.get('seed')}:{run_id}"


def name_slurm_job(label: str, env: Mapping[str, str] | None = None) -> bool:
    """Rename this SLURM job (an array task is its own job) to ``label``; False outside SLURM or on failure
    (a name is a convenience: a failure is only logged)."""
    job = where(env)["job_id"]   # <array>_<task>: `JobId=<array job id>` alone would rename every task
    if not job or shutil.which("scontrol") is None:
        return False
    try:
        out = subprocess.run(["scontrol", "update", f"JobId={job}", f"JobName={label}"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        log.debug("could not rename SLURM job %s: %s", job, e)
        return False
    if out.returncode != 0:
        log.debug("could not rename SLURM job %s: %s", job, out.stderr.strip())
    return out.returncode == 0
