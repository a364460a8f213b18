"""A sweep (`train.py -m ...`) that checks before it spends and says at the end what happened.

`SweepGuard` is a Hydra callback (conf/config.yaml: hydra.callbacks.sweep_guard):
- on_multirun_start: composes every job the basic sweeper will launch and validates each with
  `run.validate`; any problem aborts the whole sweep before a job runs or is queued, with the list of
  problems per job. (A sweep of runs that all finished is still validated: validation needs no compute.)
- on_multirun_end: reads the outcome each job wrote (`write_outcome`, called by the app) and prints
  a summary: done / skipped / failed / stopped / missing, with each job's record path and error.

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

from .. import records

log = logging.getLogger("lora_repro.sweeps.guard")
OUTCOMES = "outcomes"
EXPECTED = "_jobs.json"
STATUSES = records.OUTCOMES  # how a run ended: one vocabulary, described in records.py
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def outcome_dir(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir) / OUTCOMES


def write_outcome(outcome) -> Path | None:
    """Record how this job ended, under the running sweep's dir (no-op outside a Hydra multirun)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    data = {"num": hc.job.num, "overrides": list(hc.overrides.task), "status": outcome.status,
            "run_id": outcome.run_id, "record_path": outcome.record_path, "error": outcome.error}
    return records.atomic_write_json(outcome_dir(hc.sweep.dir) / f"{hc.job.num}.json", data)


def read_outcomes(sweep_dir: str | Path) -> dict[int, dict]:
    out = {}
    for path in outcome_dir(sweep_dir).glob("*.json"):
        if path.name == EXPECTED:
            continue
        data = records.read_record(path)
        if data is not None and isinstance(data.get("num"), int):
            out[data["num"]] = data
    return out


def validate_jobs(jobs: Sequence[Sequence[str]], config_name: str) -> list[str]:
    """Every problem of every job, one line each, prefixed with the job's number and overrides."""
    from ..run import RunConfigError, validate
    from .compose import resolved_config

    problems = []
    for num, overrides in enumerate(jobs):
        label = f"job #{num} ({' '.join(overrides) or 'no overrides'})"
        try:
            validate(resolved_config(list(overrides), config_name=config_name))  # init_from_run as in the job
        except RunConfigError as e:
            problems += [f"{label}: {p}" for p in e.problems]
        except Exception as e:  # noqa: BLE001 - a job that cannot even be composed is a problem too
            problems.append(f"{label}: cannot compose: {type(e).__name__}: {e}")
    return problems


def summary(jobs: Sequence[Sequence[str]] | None, outcomes: Mapping[int, dict]) -> tuple[dict, list[str]]:
    """(counts per status, one line per job) for the end of a sweep; a job with no outcome is "missing"."""
    nums = range(len(jobs)) if jobs is not None else sorted(outcomes)
    counts = {s: 0 for s in (*STATUSES, "missing")}
    lines = []
    for num in nums:
        o = outcomes.get(num)
        overrides = " ".join(o["overrides"] if o else (jobs[num] if jobs is not None else []))
        status = o["status"] if o and o.get("status") in STATUSES else "missing"
        counts[status] += 1
        where = (o or {}).get("record_path") or "-"
        line = f"  {status:<8} #{num} {overrides} -> {where}"
        if status == "failed":
            line += f"\n           error: {o.get('error')}"
        elif status == "missing":
            line += "  (no outcome: killed, or still queued)"
        lines.append(line)
    return counts, lines


def _sweep_jobs(config: DictConfig) -> list[list[str]] | None:
    if OmegaConf.select(config, "hydra.sweeper._target_") != BASIC_SWEEPER:
        return None
    from .compose import expand_sweep, sweeper_params

    arguments = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    return expand_sweep(sweeper_params(config), arguments)


class SweepGuard(Callback):
    """Validate every job before the sweep starts; print what happened to each when it ends."""

    def __init__(self, validate: bool = True) -> None:
        self.validate = validate
        self.jobs: list[list[str]] | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.jobs = _sweep_jobs(config)
        if self.jobs is None:
            return
        sweep_dir = outcome_dir(config.hydra.sweep.dir)
        records.atomic_write_json(sweep_dir / EXPECTED, self.jobs)
        if not self.validate:
            return
        problems = validate_jobs(self.jobs, config.hydra.job.config_name)
        if problems:  # Hydra turns a callback's exception into a warning: exit instead (SystemExit passes)
            bad_jobs = len({p.split(": ", 1)[0] for p in problems})
            print(f"sweep aborted before launching any job: {len(problems)} config problem(s) in {bad_jobs} of "
                  f"{len(self.jobs)} jobs", file=sys.stderr)
            for p in problems:
                print(f"config error: {p}", file=sys.stderr)
            raise SystemExit(2)
        log.info("sweep: all %d jobs validated", len(self.jobs))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = self.jobs
        if jobs is None:  # another process started the sweep: the job list it saved
            try:
                jobs = json.loads((outcome_dir(sweep_dir) / EXPECTED).read_text())
            except (OSError, ValueError):
                jobs = None
        counts, lines = summary(jobs, read_outcomes(sweep_dir))
        total = sum(counts.values())
        head = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s in ("done", "skipped", "failed"))
        print(f"sweep summary: {total} jobs: {head} (outcomes in {outcome_dir(sweep_dir)})", flush=True)
        print("\n".join(lines), flush=True)


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
        problems = validate_jobs(jobs, sweep.CONFIG_NAME)
    for p in problems:
        print(f"config error: {p}", file=sys.stderr)
    bad = len({p.split(": ", 1)[0] for p in problems})
    print(f"validate: {len(jobs)} job(s), {len(jobs) - bad} valid, {bad} with {len(problems)} problem(s)")
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
