"""The Hydra app: `python experiments/train.py model=roberta-base task=glue/rte method=lora method.r=8 seed=1`
(also `lora-repro train ...`). Configs live in the repository's `conf/` (next to this package in a checkout
or an editable install)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from .sweep import register_resolvers

register_resolvers()  # ${init_from_run:...} in the table2/demo presets

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .run import RunConfigError, run

    logging.getLogger("lora_repro").setLevel(logging.INFO)
    try:
        run(cfg)
    except Exception as e:
        if HydraConfig.get().mode == RunMode.MULTIRUN:  # one failed run must not stop the sweep
            logging.getLogger("lora_repro").exception("run failed; the sweep goes on")
            return
        if isinstance(e, RunConfigError):
            print(f"config error: {e}", file=sys.stderr)
            sys.exit(2)
        raise


def main(argv: list[str] | None = None) -> int:
    """Entry point for `experiments/train.py`, a console script, and `lora-repro train` (argv = overrides)."""
    if argv is not None:
        sys.argv = ["train", *argv]
    hydra_main()
    return 0


if __name__ == "__main__":
    main()
