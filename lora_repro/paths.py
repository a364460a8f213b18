"""Where things are, spelled once: the results layout and the data shipped inside the package.

A results directory (``results_dir`` in conf/config.yaml) holds::

    runs/<run_id>.json                      one record per run identity (lora_repro.records)
    checkpoints/<run_id>/adapter/           the run's adapter-only weights (lora_repro.methods.io): a symlink to
    checkpoints/<run_id>/adapter.<version>/   the version its record names (lora_repro.run.adapter_store)
    checkpoints/<run_id>/state/             resume state of a stopped run, its best adapter so far in
                                            state/adapter/ (removed when it finishes)
    checkpoints/<run_id>/run.lock           one process per run identity
    bench/*.jsonl, bench/summary.md         benchmark lines (lora_repro.bench)
    tables/table<N>.{md,csv,tex}            the paper's tables (lora_repro.report)
    figures/*.png                           rank and budget figures (lora_repro.report.plots)
    analysis/                               Sec 7 analyses (lora_repro.analysis)
    wandb/, hydra/                          W&B offline runs, Hydra's run and sweep dirs

Every module that reads or writes one of these asks this module for the path.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent                  # a checkout or an editable install: conf/ and tools/ live here
CONF_DIR = REPO_DIR / "conf"                   # the Hydra configs
PAPER_DATA_DIR = PACKAGE_DIR / "paper" / "data"        # the paper's tables and hyperparameters, with sources
MODEL_CONFIGS_DIR = PACKAGE_DIR / "models" / "configs"  # architecture configs of the paper's models
DEFAULT_RESULTS = "results"
RESULTS_ENV = "LORA_REPRO_RESULTS"             # the results dir the notebook reads

PathLike = str | os.PathLike


def user_results_dir(value: PathLike | None = None) -> Path:
    """A results dir a user names (default: $LORA_REPRO_RESULTS, else `results`), made absolute. A relative path
    is taken from the checkout's root, wherever the caller runs (a notebook's kernel starts in notebooks/);
    for an installed package without a checkout, from the working directory."""
    path = Path(value if value is not None else (os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)).expanduser()
    if path.is_absolute():
        return path
    return Path(os.path.normpath((REPO_DIR if CONF_DIR.is_dir() else Path.cwd()) / path))


def paper_csv(name: str) -> Path:
    """A file of the paper's data, e.g. ``paper_csv("table2_glue.csv")``."""
    return PAPER_DATA_DIR / name


def runs_dir(results_dir: PathLike) -> Path:
    return Path(results_dir) / "runs"


def record_path(results_dir: PathLike, run_id: str) -> Path:
    return runs_dir(results_dir) / f"{run_id}.json"


def checkpoint_dir(results_dir: PathLike, run_id: str) -> Path:
    return Path(results_dir) / "checkpoints" / run_id


def adapter_dir(results_dir: PathLike, run_id: str) -> Path:
    return checkpoint_dir(results_dir, run_id) / "adapter"


def state_dir(results_dir: PathLike, run_id: str) -> Path:
    return checkpoint_dir(results_dir, run_id) / "state"


def run_lock(results_dir: PathLike, run_id: str) -> Path:
    return checkpoint_dir(results_dir, run_id) / "run.lock"


def bench_dir(results_dir: PathLike) -> Path:
    return Path(results_dir) / "bench"


def tables_dir(results_dir: PathLike) -> Path:
    return Path(results_dir) / "tables"


def figures_dir(results_dir: PathLike) -> Path:
    return Path(results_dir) / "figures"


def analysis_dir(results_dir: PathLike) -> Path:
    return Path(results_dir) / "analysis"


def create_mode(executable: bool = False) -> int:
    """The mode a new file (or directory) gets under this process's umask. Files written through a temp file
    (`tempfile.mkstemp` makes them 0600) are chmod-ed to it, so a shared results dir stays readable by the
    colleagues the umask lets in."""
    umask = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    if umask is None:   # no /proc: read it the racy way (set and restore)
        umask = os.umask(0o022)
        os.umask(umask)
    return (0o777 if executable else 0o666) & ~umask
