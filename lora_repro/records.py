"""The local results store: one JSON record per run identity under ``<results>/runs/``.

Records are the single source of truth for tables. They are written atomically (temp file +
``os.replace`` in the same directory), so a crash never leaves a torn file, and many processes
can write into one results directory at once. A run's identity is a hash of its resolved config
minus the keys that do not change what is computed (logging, launcher, output paths), so a
re-launched sweep finds the runs it already finished.

This module is also the one home of a record's shape (`Record`: every field, named once, with its
meaning) and of reading one (`metric_value`, `trainable_params`, `is_finished`, `method_options`, ...);
`run.execute.make_record` fills a `Record`, and the report, plots and W&B summary read through here.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .paths import create_mode, record_path, runs_dir  # noqa: F401  (the layout is spelled in paths.py; records.record_path stays)

# Top-level config keys that never change what a run computes.
IDENTITY_EXCLUDED_KEYS = frozenset(
    {"logger", "hydra", "launcher", "results_dir", "output_dir", "checkpoint_dir", "resume", "dry_run",
     "progress_bar", "skip_existing", "num_workers", "stop_after_steps", "select_on_test"}
)
# A top-level key stating why a run may keep its best epoch on a test split (run.validate); it documents,
# it does not change what is computed, so it is not part of the identity.
SELECT_ON_TEST_KEY = "select_on_test"
STATUS_FINISHED = "finished"
STATUS_FAILED = "failed"

# How one run ended, as `run.execute.Outcome.status` and the sweep guard's summary count it. A record only
# exists for two of them: "done" wrote a finished record, "failed" a failed one (that a re-launch replaces);
# "skipped" found a finished record (or the run busy in another process) and wrote nothing; "stopped" saved
# resume state at a step boundary (a stop signal or stop_after_steps) and wrote nothing: re-run to finish.
OUTCOMES = ("done", "skipped", "failed", "stopped")


# --------------------------------------------------------------------------------------- the record
class _Omit:
    """The value of an optional field a record does not carry (it is left out of the JSON)."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = _Omit()


def _field(meaning: str, *, required: bool = False, summary: bool = False, optional: bool = False):
    """A record field: ``required`` ones must be in every record on disk (older records may lack the rest);
    ``summary`` ones are mirrored into the W&B run summary; ``optional`` ones are absent unless set."""
    meta = {"meaning": meaning, "required": required, "summary": summary}
    return dataclasses.field(default=OMIT, metadata=meta) if optional else dataclasses.field(metadata=meta)


@dataclasses.dataclass
class Record:
    """Every field a run record carries, in the order `run.execute.make_record` writes them."""
    run_id: str = _field("run identity: hash of the resolved config minus IDENTITY_EXCLUDED_KEYS",
                         required=True, summary=True)
    created_at: str = _field("when the record was written, ISO 8601 UTC", required=True)
    git_sha: str | None = _field("commit of the code that ran (None outside a git checkout)", required=True)
    model: str = _field("model config name, e.g. roberta-base", required=True)
    task: str = _field("task name, e.g. glue/mnli", required=True)
    method: str = _field("method name, e.g. lora", required=True)
    r: int | None = _field("the method's rank option (None when it has none)", required=True)
    alpha: float | None = _field("the method's alpha option (None when it has none)", required=True)
    targets: list | None = _field("the method's target weights, e.g. ['q', 'v'] (None when it has none)",
                                  required=True)
    seed: int = _field("the run's seed", required=True)
    trainable_params: int | None = _field("trainable parameters as the paper counts them: task head excluded",
                                          required=True, summary=True)
    trainable_params_with_head: int | None = _field("trainable parameters including the task head",
                                                    summary=True)
    total_params: int | None = _field("all parameters of the adapted model", required=True, summary=True)
    metrics: dict = _field("final evaluation metrics on the paper's scale (x100; NIST, CIDEr raw)", required=True)
    main_metric: str = _field("the task's main metric: the key of `metrics` a table cell shows", required=True,
                              summary=True)
    peak_vram_bytes: int | None = _field("peak memory in bytes: CUDA max allocated or CPU RSS, see "
                                         "peak_memory_kind (name kept from the first records)",
                                         required=True, summary=True)
    peak_memory_kind: str | None = _field("what peak_vram_bytes measured: cuda (max allocated) or cpu_rss",
                                          summary=True)
    tokens_per_s: float | None = _field("training throughput, tokens per second", required=True, summary=True)
    train_wall_s: float | None = _field("training wall time in seconds", required=True, summary=True)
    status: str = _field(f"{STATUS_FINISHED!r} or {STATUS_FAILED!r}", required=True, summary=True)
    config: dict = _field("the resolved config the run was made from", required=True)
    method_config: dict = _field("the method's options with its defaults filled in")
    history: list = _field("logged training steps and evaluations")
    steps: int | None = _field("optimizer steps taken")
    precision: str | None = _field("the training precision `auto` resolved to, e.g. bf16")
    adapter_dir: str = _field("where the run's adapter weights were saved", optional=True)
    error: str = _field("failed runs: the error, with the fix for an out-of-memory error", optional=True)
    last_step: int | None = _field("failed runs: the last completed step", optional=True)
    batch_size: int = _field("out-of-memory failures: trainer.batch_size", optional=True)
    grad_accum: int = _field("out-of-memory failures: trainer.grad_accum", optional=True)
    max_length: int = _field("out-of-memory failures: the run's max_length", optional=True)
    # where and how the run ran (run.cluster.where; set in every record written since they exist)
    job_id: str | None = _field("the SLURM job that wrote the record: <array job>_<task> for an array task, "
                                "else SLURM_JOB_ID (None outside SLURM)", optional=True)
    array_task: int | None = _field("the SLURM array task index (None outside an array job)", optional=True)
    host: str = _field("the machine the run last trained on (its host name)", optional=True)
    restarts: int = _field("how often SLURM requeued the job before this record (SLURM_RESTART_COUNT; 0 "
                           "outside SLURM)", optional=True)
    resumed_from_step: int | None = _field("the step this last segment of training resumed from (its saved "
                                           "state); None when it started fresh", optional=True)

    def as_dict(self) -> dict:
        """The record as stored: every field but the optional ones left unset (values not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not OMIT}


RECORD_SCHEMA: dict[str, str] = {f.name: f.metadata["meaning"] for f in dataclasses.fields(Record)}
RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(Record) if f.metadata["required"])
SUMMARY_FIELDS = tuple(f.name for f in dataclasses.fields(Record) if f.metadata["summary"])


def _canonical(obj: Any) -> Any:
    """Plain JSON-able data with sorted keys, so equal configs hash equally."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)  # 1.0 and 1 are the same hyperparameter
    return obj


def identity_config(config: Mapping) -> dict:
    """The part of a resolved config that decides what a run computes."""
    return {k: v for k, v in _canonical(config).items() if k not in IDENTITY_EXCLUDED_KEYS}


def run_identity(config: Mapping) -> str:
    """A 16-hex-digit hash of the resolved config minus logging/launcher keys."""
    blob = json.dumps(identity_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON so that readers see either the old file or the complete new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, create_mode())  # mkstemp makes 0600: a colleague's `tables` on a shared dir must read it
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def validate_record(record: Mapping) -> list[str]:
    """Problems with a record (missing fields, bad status); empty when it is well formed."""
    problems = [f"missing field {k!r}" for k in RECORD_FIELDS if k not in record]
    if record.get("status") not in (STATUS_FINISHED, STATUS_FAILED):
        problems.append(f"status {record.get('status')!r} is not one of {[STATUS_FINISHED, STATUS_FAILED]}")
    if record.get("status") == STATUS_FINISHED and not isinstance(record.get("metrics"), Mapping):
        problems.append("finished record has no metrics mapping")
    return problems


def write_record(record: Mapping, results_dir: str | os.PathLike) -> Path:
    """Atomically write a run record. A failed record never replaces a finished one; among writers of
    one run_id at once the last complete write wins (each writes its own temp file, then renames)."""
    problems = validate_record(record)
    if problems:
        raise ValueError(f"refusing to write malformed record {record.get('run_id')!r}: {'; '.join(problems)}")
    path = record_path(results_dir, record["run_id"])
    with file_lock(path.parent / f".{path.stem}.lock"):  # a failed write's check-then-replace must not race
        if record["status"] == STATUS_FAILED:
            existing = read_record(path)
            if existing is not None and existing.get("status") == STATUS_FINISHED:
                return path
        return atomic_write_json(path, dict(record))


class LockBusy(RuntimeError):
    """Another process holds the lock (a non-blocking `file_lock`)."""


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, blocking: bool = True) -> Iterator[None]:
    """An advisory flock on ``path``; the kernel drops it when its process dies (even by kill -9), so a
    crashed holder never leaves it stuck. Without flock (Windows, some network file systems): no lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            import fcntl
            fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockBusy(str(path)) from None
        except (ImportError, OSError):
            pass
        yield


def read_record(path: str | os.PathLike) -> dict | None:
    """The record at ``path``, or None when it is absent or unreadable."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def finished_record(results_dir: str | os.PathLike, run_id: str) -> dict | None:
    """The finished record of ``run_id``, if one exists (what a sweep skips on)."""
    rec = read_record(record_path(results_dir, run_id))
    return rec if rec is not None and rec.get("status") == STATUS_FINISHED else None


def load_records(results_dir: str | os.PathLike) -> tuple[list[dict], list[tuple[Path, str]]]:
    """All well-formed records, and (path, reason) for every file that is corrupt or malformed."""
    records: list[dict] = []
    bad: list[tuple[Path, str]] = []
    for path in sorted(runs_dir(results_dir).glob("*.json")):
        try:
            with open(path) as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            bad.append((path, f"not valid JSON: {e}"))
            continue
        except OSError as e:  # a dangling link, a directory named *.json, a file this user may not read
            bad.append((path, f"cannot be read: {type(e).__name__}: {e.strerror or e}"))
            continue
        if not isinstance(data, dict):
            bad.append((path, "not a JSON object"))
            continue
        problems = validate_record(data) or _table_problems(data, path)
        if problems:
            bad.append((path, "; ".join(problems)))
            continue
        records.append(data)
    return records, bad


def _table_problems(record: Mapping, path: Path) -> list[str]:
    """What would put a record in the wrong cell or break a table: a seed that is not an integer, a metric
    that is not a finite number, a file name that is not its run_id (a stray copy), top-level fields that
    disagree with the config they were made from (a hand edit)."""
    problems = []
    seed = record.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        problems.append(f"seed {seed!r} is not an integer")
    if is_finished(record):
        odd = {k: v for k, v in record["metrics"].items()
               if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))}
        if odd:
            problems.append(f"metrics that are not finite numbers: {odd}")
    if path.stem != str(record.get("run_id")):
        problems.append(f"run_id {record.get('run_id')!r} is not the file's name {path.stem!r}")
    config = record.get("config")
    if isinstance(config, Mapping):
        def name(key):
            value = config.get(key)
            return value.get("name") if isinstance(value, Mapping) else value
        pairs = (("task", record.get("task"), name("task")), ("model", record.get("model"), name("model")),
                 ("method", method_name(record), name("method")), ("seed", seed, config.get("seed")))
        for key, mine, theirs in pairs:
            if theirs is not None and mine != theirs:
                problems.append(f"{key} {mine!r} disagrees with its config's {theirs!r}")
    return problems


# ----------------------------------------------------------------------------------- reading a record
def _norm(key: str) -> str:
    """A metric key with case and punctuation dropped: "ROUGE-L" and "rougeL" are one metric."""
    return re.sub(r"[^a-z0-9]", "", str(key).lower())


def is_finished(rec: Mapping) -> bool:
    return rec.get("status") == STATUS_FINISHED


def method_name(rec: Mapping) -> str | None:
    """The record's method name, whether stored as a name or as the method's config mapping."""
    method = rec.get("method")
    return method.get("name") if isinstance(method, Mapping) else method


def model_name(rec: Mapping) -> str:
    """The record's model config name, lower case, without a hub owner ("org/x" -> "x")."""
    model = rec.get("model")
    if isinstance(model, Mapping):
        model = model.get("name")
    return str(model or "").split("/")[-1].lower()


def metric_value(rec: Mapping, name: str | None = None) -> float | None:
    """The record's ``name`` metric (default: its main metric), keys matched ignoring case and punctuation;
    None when the record lacks it or it is not a number."""
    want = name or rec.get("main_metric")
    if want is None:
        return None
    by_norm = {_norm(k): v for k, v in (rec.get("metrics") or {}).items()}
    v = by_norm.get(_norm(want))
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def trainable_params(rec: Mapping) -> int | None:
    """Trainable parameters as the paper counts them (task head excluded)."""
    v = rec.get("trainable_params")
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def method_options(rec: Mapping) -> dict:
    """The record's method options: its full ``method_config`` (defaults filled in) when it has one, else
    ``config.method``, overlaid with the record's r / alpha / targets (a "q,v" string becomes a list)."""
    opts = dict(rec.get("method_config") or (rec.get("config") or {}).get("method") or {})
    for key in ("r", "alpha", "targets"):
        if rec.get(key) is not None:
            opts[key] = rec[key]
    if isinstance(opts.get("targets"), str):
        opts["targets"] = [t for t in re.split(r"[,\s]+", opts["targets"]) if t]
    return opts


def protocol(rec: Mapping) -> str | None:
    """The run's protocol (``config.protocol``); None for the paper's default ("paper" or unset)."""
    p = (rec.get("config") or {}).get("protocol")
    return None if p in (None, "", "paper") else str(p)


def init_from(rec: Mapping) -> str | None:
    """The adapter the run started from (``config.method_init_from``), if any."""
    return (rec.get("config") or {}).get("method_init_from") or None
