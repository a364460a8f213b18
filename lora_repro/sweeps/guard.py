"""A sweep (`train.py -m ...`) that checks before it spends and says at the end what happened.

`SweepGuard` is a Hydra callback (conf/config.yaml: hydra.callbacks.sweep_guard):
- on_multirun_start: composes every job the basic sweeper will launch and validates each with
  `run.validate`; any problem aborts the whole sweep before a job runs or is queued, with the list of
  problems per job. It also decides which jobs are not launched at all (`_dropped.json`): a job whose run
  already has a finished record ("skipped"), and a job that starts from another run's adapter that does not
  exist yet ("waiting": its dependency, e.g. stage 1 of Table 2, has not finished). The submitit launchers
  (`sweeps.launcher`) leave them out of the array job, so a re-launched sweep allocates nothing for them;
  the app returns at once for them under the basic launcher.
- on_multirun_end: reads the outcome each job wrote (`write_outcome`, called by the app; the launcher writes
  one for a job SLURM ended without a result) and prints a summary: done / skipped / waiting / failed /
  stopped / missing, requeued jobs, each job's record path and error. It exits 1 when a job failed or is
  missing, so `make` and CI see it.

Outcomes live in `<hydra.sweep.dir>/outcomes/<job num>.json`, one small file per job written atomically,
so jobs on other machines (submitit) and a requeued job (which rewrites its own file) never collide.
"""
from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .. import paths, records

log = logging.getLogger("lora_repro.sweeps.guard")
OUTCOMES = "outcomes"
EXPECTED = "_jobs.json"
DROPPED = "_dropped.json"    # {job num: outcome} of the jobs not launched (finished, or waiting on another run)
WAITING = "waiting"
STATUSES = (*records.OUTCOMES, WAITING)  # how a run ended (records.py), or that it waits for another run
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def outcome_dir(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir) / OUTCOMES


def write_outcome(outcome) -> Path | None:
    """Record how this job ended, under the running sweep's dir (no-op outside a Hydra multirun)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    from ..run import cluster

    hc = HydraConfig.get()
    resumed = (outcome.record or {}).get("resumed_from_step")
    return write_job_outcome(hc.sweep.dir, hc.job.num, list(hc.overrides.task), outcome.status, outcome.run_id,
                             outcome.record_path, outcome.error, **cluster.where(), resumed_from_step=resumed)


def write_job_outcome(sweep_dir: str | Path, num: int, overrides: Sequence[str], status: str,
                      run_id: str | None = None, record_path: str | None = None, error: str | None = None,
                      **where) -> Path:
    """One job's outcome file (the app writes its own; the guard and the launcher write the jobs they did not
    launch or that SLURM ended without a result). ``where``: job_id, restarts, ... (run.cluster.where)."""
    data = {"num": num, "overrides": list(overrides), "status": status, "run_id": run_id,
            "record_path": record_path, "error": error, **where}
    return records.atomic_write_json(outcome_dir(sweep_dir) / f"{num}.json", data)


def read_dropped(sweep_dir: str | Path) -> dict[int, dict]:
    """{job num: its outcome} of the jobs the guard decided not to launch ({} when none or no guard)."""
    data = records.read_record(outcome_dir(sweep_dir) / DROPPED) or {}
    return {int(k): v for k, v in data.items()}


def dropped_job(num: int) -> bool:
    """Inside a job of a running multirun: true when the guard dropped it (the app then does nothing)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False
    hc = HydraConfig.get()
    return num in read_dropped(hc.sweep.dir)


def read_outcomes(sweep_dir: str | Path) -> dict[int, dict]:
    out = {}
    for path in outcome_dir(sweep_dir).glob("*.json"):
        if path.name in (EXPECTED, DROPPED):
            continue
        data = records.read_record(path)
        if data is not None and isinstance(data.get("num"), int):
            out[data["num"]] = data
    return out


def check_jobs(jobs: Sequence[Sequence[str]], config_name: str) -> tuple[list[str], dict[int, dict]]:
    """(every problem of every job, one line each prefixed with the job's number and overrides; the jobs not to
    launch: {num: outcome}). A job is not launched when its run has a finished record (and skip_existing is
    on), or when its `method_init_from` adapter is missing because the run that makes it has not finished
    ("waiting"; a missing adapter of a *finished* run is a problem)."""
    from ..run import RunConfigError, validate
    from .compose import resolved_config

    problems, dropped = [], {}
    for num, overrides in enumerate(jobs):
        label = f"job #{num} ({' '.join(overrides) or 'no overrides'})"
        try:
            config = resolved_config(list(overrides), config_name=config_name)  # init_from_run as in the job
            waits_for = _missing_dependency(config)
            v = validate({**config, "method_init_from": None} if waits_for else config)
        except RunConfigError as e:
            problems += [f"{label}: {p}" for p in e.problems]
            continue
        except Exception as e:  # noqa: BLE001 - a job that cannot even be composed is a problem too
            problems.append(f"{label}: cannot compose: {type(e).__name__}: {e}")
            continue
        results_dir = config.get("results_dir") or paths.DEFAULT_RESULTS
        path = str(records.record_path(results_dir, v.run_id))
        if config.get("skip_existing", True) and records.finished_record(results_dir, v.run_id) is not None:
            dropped[num] = {"status": "skipped", "run_id": v.run_id, "record_path": path,
                            "error": "finished record exists: not launched"}
        elif waits_for:
            source, status = waits_for
            if status == records.STATUS_FINISHED:
                problems.append(f"{label}: method_init_from={config['method_init_from']!r}: run {source} finished "
                                "but its adapter is missing")
            else:
                dropped[num] = {"status": WAITING, "run_id": v.run_id, "record_path": path,
                                "error": f"waits for run {source} ({status or 'not run yet'}): its adapter "
                                         f"{config['method_init_from']} does not exist yet"}
    return problems, dropped


def _missing_dependency(config: Mapping) -> tuple[str, str | None] | None:
    """(source run id, its record status) when the job starts from an adapter that does not exist yet."""
    from ..methods.io import ADAPTER_WEIGHTS

    init = config.get("method_init_from")
    if not init or Path(init, ADAPTER_WEIGHTS).is_file():
        return None
    source = Path(init).parent.name             # <results>/checkpoints/<run_id>/adapter
    rec = records.read_record(records.record_path(Path(init).parent.parent.parent, source))
    return source, (rec or {}).get("status")


def validate_jobs(jobs: Sequence[Sequence[str]], config_name: str) -> list[str]:
    """Every problem of every job (jobs waiting on another run's adapter are not a problem)."""
    return check_jobs(jobs, config_name)[0]


def summary(jobs: Sequence[Sequence[str]] | None, outcomes: Mapping[int, dict]) -> tuple[dict, list[str]]:
    """(counts per status plus "missing" and "requeued", one line per job) for the end of a sweep; a job with
    no outcome is "missing"; "requeued" counts jobs SLURM requeued (preemption, time limit) at least once."""
    nums = range(len(jobs)) if jobs is not None else sorted(outcomes)
    counts = {s: 0 for s in (*STATUSES, "missing")}
    requeued = 0
    lines = []
    for num in nums:
        o = outcomes.get(num)
        overrides = " ".join(o["overrides"] if o else (jobs[num] if jobs is not None else []))
        status = o["status"] if o and o.get("status") in STATUSES else "missing"
        counts[status] += 1
        where = (o or {}).get("record_path") or "-"
        line = f"  {status:<8} #{num} {overrides} -> {where}"
        how = [f"SLURM job {o['job_id']}"] if o and o.get("job_id") else []
        if o and o.get("restarts"):
            requeued += 1
            how.append(f"requeued {o['restarts']}x")
        if o and o.get("resumed_from_step"):
            how.append(f"resumed from step {o['resumed_from_step']}")
        if how:
            line += f"  ({', '.join(how)})"
        if status in ("failed", WAITING):
            line += f"\n           {'error' if status == 'failed' else 'reason'}: {o.get('error')}"
        elif status == "missing":
            line += "  (no outcome: killed, or still queued)"
        lines.append(line)
    counts["requeued"] = requeued
    return counts, lines


def summary_head(counts: Mapping[str, int]) -> str:
    """`N jobs: a done, b skipped, c failed[, d waiting, ...], r requeued` (zero counts of rarer states left out)."""
    total = sum(n for s, n in counts.items() if s != "requeued")
    shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s in ("done", "skipped", "failed", "requeued"))
    return f"{total} jobs: {shown}"


def _sweep_jobs(config: DictConfig) -> list[list[str]] | None:
    if OmegaConf.select(config, "hydra.sweeper._target_") != BASIC_SWEEPER:
        return None
    from .compose import expand_sweep, sweeper_params

    arguments = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    return expand_sweep(sweeper_params(config), arguments)



class SweepFailed(SystemExit):
    """Exit 1 at a sweep's end because a job failed: the app tells it from Hydra refusing an override (also exit 1,
    turned into 2). Under SLURM the jobs run elsewhere, so "no job ran here" cannot tell the two apart."""


class SweepGuard(Callback):
    """Validate every job before the sweep starts; print what happened to each when it ends."""

    def __init__(self, validate: bool = True) -> None:
        self.validate = validate
        self.jobs: list[list[str]] | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.jobs = _sweep_jobs(config)
        if self.jobs is None:
            return
        sweep_dir = config.hydra.sweep.dir
        records.atomic_write_json(outcome_dir(sweep_dir) / EXPECTED, self.jobs)
        if not self.validate:
            return
        problems, dropped = check_jobs(self.jobs, config.hydra.job.config_name)
        if problems:  # Hydra turns a callback's exception into a warning: exit instead (SystemExit passes)
            bad_jobs = len({p.split(": ", 1)[0] for p in problems})
            print(f"sweep aborted before launching any job: {len(problems)} config problem(s) in {bad_jobs} of "
                  f"{len(self.jobs)} jobs", file=sys.stderr)
            for p in problems:
                print(f"config error: {p}", file=sys.stderr)
            raise SystemExit(2)
        for num, o in dropped.items():
            write_job_outcome(sweep_dir, num, self.jobs[num], o["status"], o["run_id"], o["record_path"], o["error"])
        records.atomic_write_json(outcome_dir(sweep_dir) / DROPPED, {str(k): v for k, v in dropped.items()})
        skipped = sum(o["status"] == "skipped" for o in dropped.values())
        log.info("sweep: all %d jobs validated; %d to launch, %d finished (not launched), %d waiting for another "
                 "run", len(self.jobs), len(self.jobs) - len(dropped), skipped, len(dropped) - skipped)
        for num, o in sorted(dropped.items()):
            if o["status"] == WAITING:
                log.info("  waiting #%d %s: %s", num, " ".join(self.jobs[num]), o["error"])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = self.jobs
        if jobs is None:  # another process started the sweep: the job list it saved
            try:
                jobs = json.loads((outcome_dir(sweep_dir) / EXPECTED).read_text())
            except (OSError, ValueError):
                jobs = None
        counts, lines = summary(jobs, read_outcomes(sweep_dir))
        print(f"sweep summary: {summary_head(counts)} (outcomes in {outcome_dir(sweep_dir)})", flush=True)
        print("\n".join(lines), flush=True)
        if counts["failed"] or counts["missing"]:
            raise SweepFailed(1)   # make, CI and a later stage see that this sweep did not finish


def main(argv: list[str] | None = None) -> int:
    """`lora-repro validate [overrides]`: validate every job a `train.py -m <overrides>` sweep would launch
    (the preset's hydra.sweeper.params included), without launching or queueing anything."""
    from . import compose as sweep

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print("usage: lora-repro validate [OVERRIDES ...]   e.g. +experiment=table2 seed=1,2\n"
              "Composes and validates every job of the sweep; exit 2 listing every problem.")
        return 0
    with sweep.hydra_context():
        try:
            jobs = sweep.sweep_overrides(argv)
        except sweep.SweepError as e:
            print(f"config error: {e}", file=sys.stderr)
            return 2
        problems, dropped = check_jobs(jobs, sweep.CONFIG_NAME)
    for p in problems:
        print(f"config error: {p}", file=sys.stderr)
    bad = len({p.split(": ", 1)[0] for p in problems})
    waiting = [n for n, o in dropped.items() if o["status"] == WAITING]
    print(f"validate: {len(jobs)} job(s), {len(jobs) - bad} valid, {bad} with {len(problems)} problem(s)"
          + (f"; {len(waiting)} wait for another run's adapter" if waiting else ""))
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
