"""hydra-submitit-launcher's SLURM and local launchers, made to survive a real cluster.

They are the plugin's own classes (the same executor, parameters, pickled job and `checkpoint()` requeue);
`launch` differs in three ways:
- jobs the sweep guard dropped (finished runs, runs waiting on another run's adapter: `guard.read_dropped`)
  are not submitted, so a re-launched Table 2 allocates nothing for its finished runs;
- a job SLURM ends without a result (cancelled, node failure, OOM kill: submitit's `UncompletedJobError`)
  becomes that job's "failed" outcome with the reason, instead of killing the driver before its summary;
- resources are checked before submission (a GPU request on a partition without GPUs, a value that is not a
  number, `sacct` failing: submitit would wait forever on a lost job), and an sbatch refusal is one line
  naming the settings to change, not a traceback.

conf/hydra/launcher/{slurm,local}.yaml point `_target_` here.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra_plugins.hydra_submitit_launcher import submitit_launcher as upstream

from . import guard

log = logging.getLogger("lora_repro.sweeps.launcher")
RESOURCE_ENV = {"gpus_per_node": "LORA_SLURM_GPUS", "cpus_per_task": "LORA_SLURM_CPUS", "mem_gb": "LORA_SLURM_MEM_GB",
                "timeout_min": "LORA_SLURM_TIMEOUT_MIN", "array_parallelism": "LORA_SLURM_PARALLEL",
                "partition": "LORA_SLURM_PARTITION"}


class ResourceError(ValueError):
    """A launcher setting that cannot work; the message is one line naming the setting and the fix."""


def _setting(key: str) -> str:
    env = RESOURCE_ENV.get(key)
    return f"hydra.launcher.{key}" + (f" ({env})" if env else "")


def check_resources(params: Mapping[str, Any], partition_gres: str | None = None) -> None:
    """Raise ResourceError for settings sbatch would refuse or a job could not use. ``partition_gres``: the
    partition's GRES as `sinfo -o %G` prints it (None: unknown, not checked)."""
    for key in ("gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min", "array_parallelism"):
        value = params.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "gpus_per_node" else 1):
            low = "0" if key == "gpus_per_node" else "1"
            raise ResourceError(f"{_setting(key)}={value!r}: must be an integer >= {low}")
    gpus = params.get("gpus_per_node") or 0
    if gpus and partition_gres is not None and "gpu" not in partition_gres:
        where = params.get("partition") or "the default partition"
        raise ResourceError(f"{_setting('gpus_per_node')}={gpus} but {where} has no GPUs (sinfo GRES: "
                            f"{partition_gres.strip() or 'none'}): set LORA_SLURM_GPUS=0, or pick a GPU partition "
                            "with LORA_SLURM_PARTITION")


def partition_gres(partition: str | None) -> str | None:
    """The GRES of a SLURM partition (`sinfo -h -o %G`), None when sinfo is absent or fails."""
    if shutil.which("sinfo") is None:
        return None
    cmd = ["sinfo", "-h", "-o", "%G"] + (["-p", partition] if partition else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 and out.stdout.strip() else None


def check_sacct() -> None:
    """submitit reads job states with `sacct`; where it fails (no accounting), a job that dies without a result
    leaves the driver waiting forever. Raise ResourceError then (nothing checked when sacct is not installed:
    submitit's own error says so)."""
    if shutil.which("sacct") is None:
        return
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-o", "JobID", "-S", "now"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        raise ResourceError(f"`sacct` does not answer ({e}): submitit needs SLURM accounting (slurmdbd) to see "
                            "job states") from None
    if out.returncode != 0:
        first = (out.stderr.strip().splitlines() or ["no error message"])[0]
        raise ResourceError(f"`sacct` fails ({first}): submitit needs SLURM accounting (slurmdbd) to see job "
                            "states, or a job that dies would leave the sweep waiting forever")


def _reason(job, error: BaseException) -> str:
    """Why a submitted job has no result, in one line: its SLURM state and submitit's first error line."""
    try:
        state = job.state
    except Exception:  # noqa: BLE001 - the state is a nicety
        state = "UNKNOWN"
    text = str(error).strip().splitlines()
    return f"SLURM job {job.job_id} ended {state} without a result ({type(error).__name__}: " \
           f"{text[0] if text else ''})"


class _SurvivingLauncher:
    """The part shared by the SLURM and local launchers (mixed in before the plugin's class)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
        import submitit
        from hydra.core.singleton import Singleton
        from hydra.core.utils import filter_overrides
        from omegaconf import OmegaConf

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        dropped = guard.read_dropped(sweep_dir)
        todo = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)
                if initial_job_idx + i not in dropped]
        if len(todo) < len(job_overrides):
            log.info("not submitting %d of %d job(s): finished, or waiting for another run (see the summary)",
                     len(job_overrides) - len(todo), len(job_overrides))
        if not todo:
            return []
        params = dict(self.params)
        if self._EXECUTOR == "slurm":
            try:
                check_resources(params, partition_gres(params.get("partition")))
                check_sacct()
            except ResourceError as e:
                print(f"sweep not submitted: {e}", file=sys.stderr)
                raise SystemExit(2) from None
        init = {"folder": params["submitit_folder"]}
        if "max_num_timeout" in params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(upstream.BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in params.items()
                                      if k not in ("submitit_folder", "max_num_timeout")})
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            sweep_dir.chmod(int(str(self.config.hydra.sweep.mode), 8))
        for idx, overrides in todo:
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        args = [(overrides, "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state())
                for idx, overrides in todo]
        try:
            jobs = executor.map_array(self, *zip(*args))
        except submitit.core.utils.FailedJobError as e:
            lines = [x for x in str(e).splitlines() if "error" in x.lower()] or str(e).splitlines()[-1:]
            print(f"sweep not submitted: sbatch refused the jobs: {lines[0].strip() if lines else e} (resources: "
                  + ", ".join(f"{_setting(k)}={params.get(k)}" for k in ("partition", "gpus_per_node",
                                                                          "cpus_per_task", "mem_gb"))
                  + ")", file=sys.stderr)
            raise SystemExit(2) from None
        returns = []
        for (idx, overrides), job in zip(todo, jobs):
            try:
                returns.append(job.results()[0])
            except Exception as e:  # noqa: BLE001 - one lost job is that job's failure, not the sweep's
                reason = _reason(job, e)
                log.error("job #%d: %s", idx, reason)
                outcome = guard.read_outcomes(sweep_dir).get(idx) or {}
                guard.write_job_outcome(sweep_dir, idx, overrides, "failed", outcome.get("run_id"),
                                        outcome.get("record_path"), reason, job_id=job.job_id)
        return returns


class SlurmLauncher(_SurvivingLauncher, upstream.SlurmLauncher):
    pass


class LocalLauncher(_SurvivingLauncher, upstream.LocalLauncher):
    pass
