"""The Hydra app: `python experiments/train.py model=roberta-base task=glue/rte method=lora method.r=8 seed=1`
(also `lora-repro train ...`). Configs live in the repository's `conf/` (next to this package in a checkout
or an editable install)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    from .run import RunConfigError, run

    logging.getLogger("lora_repro").setLevel(logging.INFO)
    try:
        run(cfg)
    except RunConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `experiments/train.py`, a console script, and `lora-repro train` (argv = overrides)."""
    if argv is not None:
        sys.argv = ["train", *argv]
    hydra_main()
    return 0


if __name__ == "__main__":
    main()
