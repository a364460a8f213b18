"""The Hydra app: `python experiments/train.py model=roberta-base task=glue/rte method=lora method.r=8 seed=1`
(also `lora-repro train ...`). Configs live in the repository's `conf/` (next to this package in a checkout
or an editable install).

A single run that fails exits non-zero (2 for a config error). In a sweep (`-m`) a failed job writes its
failure record and an outcome line, and returns normally so Hydra's launcher goes on with the next job;
`lora_repro.sweeps.guard.SweepGuard` (hydra.callbacks in conf/config.yaml) validates every job before the
first starts and prints the done / skipped / failed summary at the end.
"""
from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from . import paths
from .sweeps.compose import register_resolvers
from .sweeps.guard import SweepFailed

register_resolvers()  # ${init_from_run:...} in the table2/demo presets

CONF_DIR = str(paths.CONF_DIR)
CONFIG_ERROR_EXIT = 2
log = logging.getLogger("lora_repro.app")
_started = [False]   # the task function ran: an exit 1 before it is Hydra refusing the config or an override


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    from .run import Outcome, RunConfigError, execute
    from .sweeps import guard

    _started[0] = True
    logging.getLogger("lora_repro").setLevel(logging.INFO)
    multirun = _in_multirun()
    if multirun and guard.dropped_job(_job_num()):
        return   # finished, or waiting for another run: the guard wrote its outcome and did not launch it
    try:
        outcome = execute(cfg)
    except RunConfigError as e:
        for problem in e.problems:
            print(f"config error: {problem}", file=sys.stderr)
        if not multirun:
            sys.exit(CONFIG_ERROR_EXIT)
        outcome = Outcome("failed", error=f"config error: {'; '.join(e.problems)}")
    except Exception as e:  # noqa: BLE001 - in a sweep every failure is recorded and the sweep goes on
        if not multirun:
            raise
        log.exception("job failed; the sweep goes on with the next job")
        outcome = _failed_outcome(cfg, e)
    if multirun:
        guard.write_outcome(outcome)


def _job_num() -> int:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().job.num


def _failed_outcome(cfg, error: BaseException):
    from . import paths
    from .run import Outcome, plain_config, run_id_of

    config = plain_config(cfg)
    run_id = run_id_of(config)
    path = paths.record_path(config.get("results_dir") or paths.DEFAULT_RESULTS, run_id)
    return Outcome("failed", run_id, None, str(path), f"{type(error).__name__}: {error}")


def main(argv: list[str] | None = None) -> int:
    """Entry point for `experiments/train.py`, a console script, and `lora-repro train` (argv = overrides)."""
    if argv is not None:
        sys.argv = ["train", *argv]
    _started[0] = False
    try:
        hydra_main()
    except SystemExit as e:
        # `method=nosuch`, `method.rank=8`: Hydra printed why and exits 1 before any job ran here
        if e.code == 1 and not _started[0] and not isinstance(e, SweepFailed):
            raise SystemExit(CONFIG_ERROR_EXIT) from None
        raise
    return 0


if __name__ == "__main__":
    main()
