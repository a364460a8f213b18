"""Bad local data named precisely: the file, the line or row, and the value.

`Task.load` raises these as `TaskConfigError` lines; `Task.check_data_dir` runs the same load during
validation (memoised per file state, so a sweep's jobs on one data_dir read it once), so a wrong label or an
unreadable line stops the run before a model loads instead of crashing in the loop or scoring silently wrong.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

MAX_LISTED = 5          # rows listed per problem kind; the rest are counted
_CHECKED: dict[tuple, str | None] = {}


def load_checked(task, data_dir) -> None:
    """`task.load(data_dir)` once per (task, files, sizes, mtimes): raises its TaskConfigError (remembered)."""
    from .base import TaskConfigError

    files = sorted(p for p in Path(data_dir).iterdir() if p.is_file())
    key = (task.name, str(Path(data_dir).resolve()), tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                                                           for p in files))
    if key not in _CHECKED:
        from datasets.utils import logging as ds_logging

        quiet = ds_logging.is_progress_bar_enabled()
        ds_logging.disable_progress_bar()       # validation reads quietly; the run's own load shows its bars
        try:
            task.load(data_dir)
            _CHECKED[key] = None
        except TaskConfigError as e:
            _CHECKED[key] = str(e)
        finally:
            if quiet:
                ds_logging.enable_progress_bar()
    if _CHECKED[key] is not None:
        raise TaskConfigError(_CHECKED[key])


def where(file: str, row: int) -> str:
    """`line N` for JSON lines (row i is the i-th non-blank line), `row N` otherwise (1-based)."""
    if Path(file).suffix == ".jsonl":
        with open(file, "rb") as f:
            n = -1
            for lineno, line in enumerate(f, 1):
                n += bool(line.strip())
                if n == row:
                    return f"line {lineno}"
    return f"row {row + 1}"


def not_utf8(file: str) -> str | None:
    """`line N is not UTF-8 text (...)` for the first such line of a file, None when every line decodes."""
    with open(file, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return f"line {lineno} is not UTF-8 text ({e.reason} at byte {e.start}: {raw[e.start:e.end]!r})"
    return None


def parse_error(file: str, fmt: str, error: BaseException) -> str:
    """Why `datasets` could not read a file, with the line when we can find it (its messages often lack one)."""
    if fmt != "parquet" and (bad := not_utf8(file)) is not None:
        return bad
    text = Path(file).read_bytes()
    for lineno, raw in enumerate(text.splitlines() if fmt == "json" else (), 1):
        line = raw.decode("utf-8")
        if fmt == "json" and Path(file).suffix == ".jsonl" and line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError as e:
                return f"line {lineno} is not a JSON object: {e.msg} (column {e.colno})"
    if fmt == "csv" and text.count(b'"') % 2:
        return "unbalanced double quote (a quoted field never ends)"
    reason = str(error).strip() or type(error).__name__
    cause = error.__cause__ or error.__context__
    if cause is not None and str(cause).strip() and str(cause).strip() not in reason:
        reason += f" ({str(cause).strip().splitlines()[0]})"
    return reason


def column(split, name: str, file: str) -> list | str:
    """A column's values, or why it cannot be read (bytes that are not UTF-8 surface only here)."""
    try:
        return list(split[name])   # a lazy Column decodes while iterated: force it here
    except UnicodeDecodeError as e:
        return f"{file}: column {name!r}: {not_utf8(file) or f'text that is not UTF-8 ({e.reason})'}"


def listed(file: str, kind: str, bad: list[tuple[int, object]]) -> list[str]:
    """One problem line: the file, what is wrong, the first bad rows (line/row: value), how many more."""
    if not bad:
        return []
    more = f" (and {len(bad) - MAX_LISTED} more)" if len(bad) > MAX_LISTED else ""
    return [f"{file}: {kind}; " + ", ".join(f"{where(file, i)}: {v!r}" for i, v in bad[:MAX_LISTED]) + more]


def is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
