"""Records -> the cells of a paper table: which finished records fill which row and column of a
`specs.TableSpec`, one value per seed, and the long format (one dict per cell: ours, std, n, paper, delta).

Only records decide what a table shows: the paper's rows are always listed (a cell without finished
records has n=0), and records of models the paper's table does not have (e.g. the demo's tiny models)
become extra rows under the same columns. A record maps to a row by (model, method, the row's method
options, protocol); its options are `records.method_options`. Given the preset cells (`report.cells`, what
`write_tables` passes), a paper cell counts only the records whose identity is its preset job's, seed aside;
the other records that match the row are listed as not counted, with the keys that differ. When several
finished records of one cell share a seed, the newest counts (a warning says which). Failed records count as
missing. Records are read only through `lora_repro.records`' accessors.
"""
from __future__ import annotations

import dataclasses
import math
import re
import statistics
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import records
from . import cells as cell_ids
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
    precisions: set = dataclasses.field(default_factory=set)   # the precision each counted run trained in

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
    not_counted: list = dataclasses.field(default_factory=list)  # dicts: run_id, row, column, seed, differs

    def center(self, cell: Cell) -> float | None:
        if not cell.n:
            return None
        vals = list(cell.values.values())
        return statistics.median(vals) if self.spec.aggregate == "median" else statistics.fmean(vals)


def _job_record(config: Mapping) -> dict:
    """A preset job's config in the shape `row_matches` reads."""
    return {"model": config["model"]["name"], "method": config["method"]["name"], "method_config": config["method"],
            "task": config["task"]["name"], "config": config}


def expected_cells(spec: TableSpec, preset_cells) -> dict[tuple[int, str], cell_ids.CellIdentity]:
    """(paper row index, column) -> the identity of the preset job that fills it (``same_runs`` shared)."""
    expected: dict[tuple[int, str], cell_ids.CellIdentity] = {}
    for config, ident in preset_cells:
        rec = _job_record(config)
        for i, row in enumerate(spec.rows):
            if row_matches(row, rec):
                for col in spec.columns:
                    if rec["task"] in col.tasks:
                        expected.setdefault((i, col.name), ident)
    index = {(row.model, row.label): i for i, row in enumerate(spec.rows)}
    for model, label, from_label, columns in spec.same_runs:
        for col in columns:
            src = (index.get((model, from_label)), col)
            if src in expected and (model, label) in index:
                expected[(index[(model, label)], col)] = expected[src]
    return expected


def build_table(spec: TableSpec, recs: Iterable[Mapping], preset_cells=None) -> BuiltTable:
    """Group finished records into the spec's rows (and extra rows) and columns, one value per seed. With
    ``preset_cells`` (`cells.preset_cells` of ``spec.presets``) a paper cell counts only its preset's runs."""
    recs = list(recs)
    warnings: list[str] = []
    not_counted: list[dict] = []
    built = [BuiltRow(r.model, r.label, r, {c.name: Cell({}, []) for c in spec.columns}) for r in spec.rows]
    expected = expected_cells(spec, preset_cells) if preset_cells is not None else None
    keys = cell_ids.record_keys(recs) if expected is not None else {}
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
        key = keys.get(str(rec.get("run_id")))
        places = [(b, c) for b in built for c in cols if row_matches(b.spec, rec)
                  or (expected is not None and key is not None
                      and getattr(expected.get((built.index(b), c.name)), "key", None) == key)]
        if expected is not None:
            counted = []
            for b, c in places:
                want = expected.get((built.index(b), c.name))
                if want is None or want.key == key:
                    counted.append((b, c))
                    continue
                ident = cell_ids.seedless(rec.get("config") or {}, keys)
                not_counted.append(dict(run_id=rec.get("run_id"), model=b.model, row=b.label, column=c.name,
                                        seed=rec.get("seed"), preset=want.preset,
                                        differs=cell_ids.differing_keys(ident, want.flat)))
            if places and not counted:
                continue
            places = counted
        if not places:
            if records.model_name(rec) in paper_models or (spec.methods and rec.get("method") not in spec.methods):
                continue  # a paper model with options no paper row has: not part of this table
            label = _options_label(str(rec.get("method")), records.method_options(rec))
            if records.protocol(rec):
                label += f" [{records.protocol(rec)}]"
            if records.init_from(rec):
                label += " [init from another run's adapter]"
            row_key = (records.model_name(rec), label)
            if row_key not in extra:
                extra[row_key] = BuiltRow(row_key[0], label, None, {c.name: Cell({}, []) for c in spec.columns})
            places = [(extra[row_key], c) for c in cols]
        seed = rec.get("seed")
        for row, col in places:
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
            if rec.get("precision"):
                cell.precisions.add(str(rec["precision"]))
            p = records.trainable_params(rec)
            if p is not None:
                cell.params.append(p)
    for d in not_counted:
        warnings.append(f"table {spec.number} {d['model']} {d['row']} {d['column']}: not counted {d['run_id']} "
                        f"(seed {d['seed']}): not the preset cell {d['preset']}; differs in {'; '.join(d['differs'])}")
    return BuiltTable(spec, built + sorted(extra.values(), key=lambda b: (b.model, _natural(b.label))), warnings,
                      not_counted)


def preset_table(spec: TableSpec, recs: Iterable[Mapping], cache_dir: str | Path | None = None,
                 config_dir: str | Path | None = None, overrides: Iterable[str] = ()) -> BuiltTable:
    """The table as `lora-repro tables` builds it: a paper cell counts only its preset job's runs (seed aside),
    the presets composed with ``overrides`` (what the sweeps ran with, e.g. ``+batch_reading=paper``). They are
    composed only when some record matches a paper row (the demo's tiny runs never do)."""
    recs = list(recs)
    needed = bool(spec.presets) and any(records.is_finished(r) and any(row_matches(row, r) for row in spec.rows)
                                        for r in recs)
    cells = cell_ids.preset_cells(spec.presets, config_dir, cache_dir, overrides) if needed else None
    return build_table(spec, recs, cells)


def _natural(label: str) -> list:
    """Sort key that orders numbers by value: `lora (r=8 ...)` before `lora (r=64 ...)`."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", label)]


def without_empty_rows(t: BuiltTable) -> BuiltTable:
    """The table with only the rows that have at least one finished record (e.g. the demo's)."""
    return BuiltTable(t.spec, [r for r in t.rows if any(c.n for c in r.cells.values())], t.warnings, t.not_counted)


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
                            paper=paper, paper_pm=paper_pm, precision=" ".join(sorted(cell.precisions)),
                            delta=None if center is None or paper is None or not t.spec.delta else center - paper))
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
                            paper=paper, paper_pm=None, precision="",
                            delta=None if avg is None or paper is None or not t.spec.delta else avg - paper))
    return out
