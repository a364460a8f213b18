"""Records -> the cells of a paper table: which finished records fill which row and column of a
`specs.TableSpec`, one value per seed, and the long format (one dict per cell: ours, std, n, paper, delta).

Only records decide what a table shows: the paper's rows are always listed (a cell without finished
records has n=0), and records of models the paper's table does not have (e.g. the demo's tiny models)
become extra rows under the same columns. A record maps to a row by (model, method, the row's method
options, protocol); its options are `records.method_options`. When several finished records of one cell
share a seed, the newest counts (a warning says which). Failed records count as missing. Records are read
only through `lora_repro.records`' accessors.
"""
from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import records
from .specs import Column, Row, TableSpec


def load_finished(results_dir: str | Path, err=None) -> list[dict]:
    """All well-formed records; every corrupt/malformed file is reported on ``err`` with its path."""
    err = err or sys.stderr
    good, bad = records.load_records(results_dir)
    for path, why in bad:
        print(f"lora-repro tables: skipping {path}: {why}", file=err)
    return good


def _opt_equal(want, have) -> bool:
    if isinstance(want, tuple):
        return isinstance(have, (list, tuple)) and sorted(map(str, have)) == sorted(want)
    if isinstance(want, (int, float)) and isinstance(have, (int, float)):
        return math.isclose(want, have)
    return want == have


def row_matches(row: Row, rec: Mapping) -> bool:
    if records.model_name(rec) != row.model or rec.get("method") != row.method or records.protocol(rec) != row.protocol:
        return False
    opts = records.method_options(rec)
    return all(k in opts and _opt_equal(v, opts[k]) for k, v in row.opts)


def cell_value(rec: Mapping, column: Column) -> float | None:
    """The record's number for ``column`` (None when the record lacks that metric)."""
    return records.metric_value(rec, column.metric)


def _options_label(method: str, opts: Mapping) -> str:
    keys = [k for k in ("r", "alpha", "targets", "l_p", "l_i") if k in opts and opts[k] is not None]
    parts = [f"{k}={','.join(map(str, opts[k])) if isinstance(opts[k], (list, tuple)) else opts[k]}" for k in keys]
    return method + (f" ({' '.join(parts)})" if parts else "")


@dataclass
class Cell:
    values: dict            # seed -> value
    params: list            # trainable params (paper counting) of the records

    @property
    def n(self) -> int:
        return len(self.values)


@dataclass
class BuiltRow:
    model: str
    label: str
    spec: Row | None                 # None for an extra row (no paper numbers)
    cells: dict                      # column name -> Cell


@dataclass
class BuiltTable:
    spec: TableSpec
    rows: list[BuiltRow]
    warnings: list[str]

    def center(self, cell: Cell) -> float | None:
        if not cell.n:
            return None
        vals = list(cell.values.values())
        return statistics.median(vals) if self.spec.aggregate == "median" else statistics.fmean(vals)


def build_table(spec: TableSpec, recs: Iterable[Mapping]) -> BuiltTable:
    """Group finished records into the spec's rows (and extra rows) and columns, one value per seed."""
    warnings: list[str] = []
    built = [BuiltRow(r.model, r.label, r, {c.name: Cell({}, []) for c in spec.columns}) for r in spec.rows]
    extra: dict[tuple, BuiltRow] = {}
    paper_models = {r.model for r in spec.rows}
    newest: dict[tuple, str] = {}
    for rec in sorted(recs, key=lambda r: str(r.get("created_at") or "")):
        if not records.is_finished(rec):
            continue
        task = str(rec.get("task") or "").lower()
        cols = [c for c in spec.columns if task in c.tasks]
        if not cols:
            continue
        targets = [b for b in built if row_matches(b.spec, rec)]
        if not targets:
            if records.model_name(rec) in paper_models or (spec.methods and rec.get("method") not in spec.methods):
                continue  # a paper model with options no paper row has: not part of this table
            label = _options_label(str(rec.get("method")), records.method_options(rec))
            if records.protocol(rec):
                label += f" [{records.protocol(rec)}]"
            if records.init_from(rec):
                label += " [init from another run's adapter]"
            key = (records.model_name(rec), label)
            if key not in extra:
                extra[key] = BuiltRow(key[0], label, None, {c.name: Cell({}, []) for c in spec.columns})
            targets = [extra[key]]
        seed = rec.get("seed")
        for row in targets:
            for col in cols:
                value = cell_value(rec, col)
                if value is None:
                    warnings.append(f"{rec.get('run_id')}: no metric {col.metric or rec.get('main_metric')!r} "
                                    f"for column {col.name!r}; have {sorted(rec.get('metrics') or {})}")
                    continue
                cell = row.cells[col.name]
                slot = (row.model, row.label, col.name, seed)
                if seed in cell.values:
                    warnings.append(f"table {spec.number} {row.model} {row.label} {col.name} seed {seed}: "
                                    f"{rec.get('run_id')} replaces older {newest[slot]}")
                cell.values[seed] = value
                newest[slot] = str(rec.get("run_id"))
                p = records.trainable_params(rec)
                if p is not None:
                    cell.params.append(p)
    return BuiltTable(spec, built + sorted(extra.values(), key=lambda b: (b.model, b.label)), warnings)


def without_empty_rows(t: BuiltTable) -> BuiltTable:
    """The table with only the rows that have at least one finished record (e.g. the demo's)."""
    return BuiltTable(t.spec, [r for r in t.rows if any(c.n for c in r.cells.values())], t.warnings)


def table_rows(t: BuiltTable) -> list[dict]:
    """Long format: one dict per (row, column) with ours (center, std, n, seeds), paper and delta."""
    out = []
    for row in t.rows:
        params = [p for c in row.cells.values() for p in c.params]
        ours_params = statistics.median(params) if params else None
        centers = {}
        for col in t.spec.columns:
            cell = row.cells[col.name]
            vals = list(cell.values.values())
            center = t.center(cell)
            centers[col.name] = center
            paper, paper_pm = row.spec.paper.get(col.name, (None, None)) if row.spec else (None, None)
            out.append(dict(table=t.spec.number, model=row.model, method=row.label,
                            paper_model=row.spec.paper_model if row.spec else "",
                            marker=row.spec.marker if row.spec else "",
                            params=ours_params, paper_params=row.spec.paper_params if row.spec else "",
                            column=col.name, ours=center, std=statistics.stdev(vals) if len(vals) > 1 else None,
                            n=cell.n, seeds=" ".join(map(str, sorted(cell.values, key=str))),
                            paper=paper, paper_pm=paper_pm,
                            delta=None if center is None or paper is None else center - paper))
        if t.spec.avg:
            vals = [centers[c.name] for c in t.spec.columns]
            avg = statistics.fmean(vals) if all(v is not None for v in vals) else None
            paper = row.spec.paper.get("Avg", (None, None))[0] if row.spec else None
            n = min(row.cells[c.name].n for c in t.spec.columns)
            out.append(dict(table=t.spec.number, model=row.model, method=row.label,
                            paper_model=row.spec.paper_model if row.spec else "",
                            marker=row.spec.marker if row.spec else "",
                            params=ours_params, paper_params=row.spec.paper_params if row.spec else "",
                            column="Avg", ours=avg, std=None, n=n if avg is not None else 0, seeds="",
                            paper=paper, paper_pm=None, delta=None if avg is None or paper is None else avg - paper))
    return out
