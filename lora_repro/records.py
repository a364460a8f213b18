"""The local results store: one JSON record per run identity under ``<results>/runs/``.

Records are the single source of truth for tables. They are written atomically (temp file +
``os.replace`` in the same directory), so a crash never leaves a torn file, and many processes
can write into one results directory at once. A run's identity is a hash of its resolved config
minus the keys that do not change what is computed (logging, launcher, output paths), so a
re-launched sweep finds the runs it already finished.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Top-level config keys that never change what a run computes.
IDENTITY_EXCLUDED_KEYS = frozenset(
    {"logger", "hydra", "launcher", "results_dir", "output_dir", "checkpoint_dir", "resume", "dry_run",
     "progress_bar", "skip_existing", "num_workers", "stop_after_steps"}
)
RECORD_FIELDS = (
    "run_id", "created_at", "git_sha", "model", "task", "method", "r", "alpha", "targets", "seed",
    "trainable_params", "total_params", "metrics", "main_metric", "peak_vram_bytes", "tokens_per_s",
    "train_wall_s", "status", "config",
)
STATUS_FINISHED = "finished"
STATUS_FAILED = "failed"


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


def runs_dir(results_dir: str | os.PathLike) -> Path:
    return Path(results_dir) / "runs"


def record_path(results_dir: str | os.PathLike, run_id: str) -> Path:
    return runs_dir(results_dir) / f"{run_id}.json"


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
    """Atomically write a run record. A failed record never replaces a finished one."""
    problems = validate_record(record)
    if problems:
        raise ValueError(f"refusing to write malformed record {record.get('run_id')!r}: {'; '.join(problems)}")
    path = record_path(results_dir, record["run_id"])
    if record["status"] == STATUS_FAILED:
        existing = read_record(path)
        if existing is not None and existing.get("status") == STATUS_FINISHED:
            return path
    return atomic_write_json(path, dict(record))


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
        if not isinstance(data, dict):
            bad.append((path, "not a JSON object"))
            continue
        problems = validate_record(data)
        if problems:
            bad.append((path, "; ".join(problems)))
            continue
        records.append(data)
    return records, bad
