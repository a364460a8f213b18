"""Run records -> the paper's Tables 1-6, with the paper's number and our delta beside every cell.

Only records decide what a table shows: the paper's rows are always listed (a cell without finished
records reads "—" with n=0), and records of models the paper's table does not have (e.g. the demo's
tiny models) become extra rows under the same columns.

Inputs
- ``<results>/runs/*.json`` via ``records.load_records``. Corrupt or malformed files are reported on
  stderr with their path and skipped; failed records count as missing.
- Table 1 only: ``<results>/bench/*.jsonl``, one JSON object per line. A latency line has
  ``model`` (e.g. "gpt2-medium"), ``batch`` (int), ``seq`` (int), ``method`` ("ft" | "lora" |
  "adapter_l" | "adapter_h"), ``mean_ms`` and ``std_ms`` (one forward pass, mean/std over trials), and
  optionally ``adapter_params`` (|Θ| of the adapter, int) and ``kind`` (lines whose kind is present and
  not "latency" are ignored). When several lines share (model, batch, seq, method, |Θ|), the last wins.

Conventions
- A record's cell value is ``metrics[<column metric>]``, where the column metric is the record's
  ``main_metric`` unless the column names its own (E2E: BLEU, NIST, ...; SAMSum: rouge1/2/L). Metric
  keys are matched ignoring case and punctuation. Metrics are stored on the paper's scale (×100,
  NIST and CIDEr raw), as the task metrics write them.
- A record maps to a row by (model, method, the row's method options, protocol). The options of the
  paper's rows of Tables 2-4 come from ``lora_repro.methods.params.ROWS`` (alpha left out); Tables 5-6
  rows are LoRA (r, targets). A record's options are its ``method_config`` (or ``config.method``)
  overlaid with its own r / alpha / targets fields.
  ``protocol: houlsby`` (top-level config key, set by the † cells of the table2 preset) marks the
  paper's † rows (Houlsby et al. setup).
- One value per seed: when several finished records of one cell share a seed, the newest counts
  (reported on stderr). Table 2 shows the median over seeds (the paper's protocol), the other tables the
  mean (Table 3 per App. D.3; Tables 4-6 have no stated protocol); ± is the sample std (ddof=1) when n>1.
- Avg (Table 2) is the mean of the 8 task cells, computed only when all 8 are present.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import records as records_mod

from ..paths import PAPER_DATA_DIR as PAPER_DIR
MISSING = "—"
GLUE_TASKS = ("mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb")
GLUE_COLUMNS = ("MNLI", "SST-2", "MRPC", "CoLA", "QNLI", "QQP", "RTE", "STS-B")


# ----------------------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class Column:
    name: str                      # as the paper prints it
    tasks: tuple[str, ...]         # record task names that feed this column
    metric: str | None = None      # None: the record's main_metric
    paper_key: str | None = None   # column name in the paper CSV (default: name)


@dataclass(frozen=True)
class Row:
    model: str                     # model config name (records' `model`)
    label: str                     # method as the paper prints it (incl. † / size)
    method: str                    # our method name
    opts: tuple = ()               # (key, value) pairs the record's method options must contain
    protocol: str | None = None    # None = the paper's default protocol, "houlsby" = † rows
    paper_model: str = ""          # model as the paper prints it
    paper_params: str = ""
    paper: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)  # column -> (value, ±)
    marker: str = ""               # "*" = copied from prior work in the paper


@dataclass(frozen=True)
class TableSpec:
    number: int
    title: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    aggregate: str                 # "median" | "mean"
    avg: bool = False              # Table 2's Avg column
    methods: tuple[str, ...] | None = None  # extra rows only for these methods (None: any)
    note: str = ""


def _read_csv(name: str) -> list[dict]:
    with open(PAPER_DIR / name, newline="") as f:
        return list(csv.DictReader(f))


def _num(s: str | None) -> float | None:
    s = (s or "").strip().replace(",", "")
    try:
        return float(s)
    except ValueError:
        return None


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(s).lower())


# The setting of every paper row of Tables 2-4 (method + the options that define the row: r, targets, drop,
# prefix lengths, ...) comes from `lora_repro.methods.params.ROWS`, the one place that derives them from the
# printed counts; alpha is left out (a training hyperparameter, not what tells rows apart).
ROW_KEYS_IGNORED = ("name", "alpha")
GPT3_STAND_IN = "gpt2-medium"   # Tables 4-6 re-run the paper's GPT-3 175B rows on GPT-2 medium


def _paper_setting(row: Mapping, table: int) -> tuple[str, str, tuple]:
    """(our model, method, options) of a paper CSV row."""
    from ..paper.params import MODEL_CONFIGS, ROWS

    key = (row["model"], row["method"], row.get("marker", "") or "", row["trainable_params"])
    if key not in ROWS:
        raise KeyError(f"table {table}: no setting for paper row {key} in lora_repro.methods.params.ROWS")
    method = ROWS[key].method
    opts = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in method.items()
                        if k not in ROW_KEYS_IGNORED))
    model = GPT3_STAND_IN if table == 4 else MODEL_CONFIGS[row["model"]]
    return model, method["name"], opts


def _table2() -> TableSpec:
    cols = tuple(Column(c, (f"glue/{t}",)) for c, t in zip(GLUE_COLUMNS, GLUE_TASKS))
    rows = []
    for r in _read_csv("table2_glue.csv"):
        dagger = r["marker"] == "†"
        model, method, opts = _paper_setting(r, 2)
        protocol = "houlsby" if dagger else None
        label = r["method"] + ("†" if dagger else "") + (f" ({r['trainable_params']})" if r["method"].startswith("Adpt") else "")
        paper = {c: (_num(r[c]), _num(r[f"{c}_pm"])) for c in GLUE_COLUMNS}
        paper["Avg"] = (_num(r["Avg"]), None)
        rows.append(Row(model, label, method, opts, protocol, r["model"], r["trainable_params"], paper,
                        "*" if r["marker"] == "*" else ""))
    return TableSpec(2, "GLUE dev (RoBERTa base/large, DeBERTa XXL)", cols, tuple(rows), "median", avg=True,
                     note="median over seeds; MNLI: the task's main metric (matched accuracy); CoLA: Matthews corr.; "
                          "STS-B: Pearson; others: accuracy")


E2E_METRICS = ("BLEU", "NIST", "METEOR", "ROUGE-L", "CIDEr")


def _table3() -> TableSpec:
    cols = tuple(Column(m, ("e2e",), metric=m) for m in E2E_METRICS)
    rows = []
    for r in _read_csv("table3_e2e.csv"):
        model, method, opts = _paper_setting(r, 3)
        label = r["method"] + (f" ({r['trainable_params']})" if r["method"].startswith("Adapter") else "")
        paper = {m: (_num(r[m]), _num(r[f"{m}_pm"])) for m in E2E_METRICS}
        rows.append(Row(model, label, method, opts, None, r["model"], r["trainable_params"], paper,
                        "*" if r["marker"] == "*" else ""))
    return TableSpec(3, "GPT-2 medium/large on E2E NLG (test set)", cols, tuple(rows), "mean",
                     note="mean over seeds (App. D.3)")


TABLE4_COLUMNS = (
    Column("WikiSQL Acc.", ("wikisql",), paper_key="WikiSQL_acc"),
    Column("MNLI-m Acc.", ("gpt2/mnli",), paper_key="MNLI_m_acc"),
    Column("SAMSum R1", ("samsum",), metric="rouge1", paper_key="SAMSum_R1"),
    Column("SAMSum R2", ("samsum",), metric="rouge2", paper_key="SAMSum_R2"),
    Column("SAMSum RL", ("samsum",), metric="rougeL", paper_key="SAMSum_RL"),
)
TABLE4_STD = {"WikiSQL Acc.": 0.5, "MNLI-m Acc.": 0.1, "SAMSum R1": 0.2, "SAMSum R2": 0.2, "SAMSum RL": 0.1}


def _table4() -> TableSpec:
    rows = []
    for r in _read_csv("table4_gpt3.csv"):
        _, method, opts = _paper_setting(r, 4)
        label = r["method"] + (f" ({r['trainable_params']})" if r["method"] in ("AdapterH", "LoRA") else "")
        paper = {c.name: (_num(r[c.paper_key]), TABLE4_STD[c.name]) for c in TABLE4_COLUMNS}
        rows.append(Row(GPT3_STAND_IN, label, method, opts, None, r["model"], r["trainable_params"], paper))
    return TableSpec(4, "WikiSQL / MNLI-m / SAMSum: the paper's GPT-3 175B rows re-run on GPT-2 medium",
                     TABLE4_COLUMNS, tuple(rows), "mean",
                     note="ours: GPT-2 medium, mean over seeds; paper: GPT-3 175B (± = the caption's typical seed std)")


TARGET_SETS = {"Wq": ("q",), "Wk": ("k",), "Wv": ("v",), "Wo": ("o",), "Wq,Wk": ("q", "k"), "Wq,Wv": ("q", "v"),
               "Wq,Wk,Wv,Wo": ("q", "k", "v", "o")}
TABLE56_COLUMNS = (Column("WikiSQL", ("wikisql",), paper_key="WikiSQL_acc"),
                   Column("MultiNLI", ("gpt2/mnli",), paper_key="MultiNLI_acc"))


def _lora_rows(csv_name: str) -> tuple[Row, ...]:
    rows = []
    for r in _read_csv(csv_name):
        targets, rank = TARGET_SETS[r["weight_types"]], int(r["rank_r"])
        paper = {"WikiSQL": (_num(r["WikiSQL_acc"]), _num(r["WikiSQL_seed_std"])),
                 "MultiNLI": (_num(r["MultiNLI_acc"]), _num(r["MultiNLI_seed_std"]))}
        rows.append(Row(GPT3_STAND_IN, f"LoRA {r['weight_types']} r={rank}", "lora",
                        (("r", rank), ("targets", targets)), None, r["model"], r.get("param_budget", ""), paper))
    return tuple(rows)


def _table5() -> TableSpec:
    return TableSpec(5, "Which weights to adapt under a fixed budget (GPT-3 18M; same r x #types on GPT-2 medium)",
                     TABLE56_COLUMNS, _lora_rows("table5_targets.csv"), "mean", methods=("lora",),
                     note="ours: GPT-2 medium, mean over seeds; paper: GPT-3 175B")


def _table6() -> TableSpec:
    return TableSpec(6, "Rank r per target set (GPT-3 175B in the paper; GPT-2 medium here)", TABLE56_COLUMNS,
                     _lora_rows("table6_rank.csv"), "mean", methods=("lora",),
                     note="ours: GPT-2 medium, mean over seeds; paper: GPT-3 175B")


TABLE_BUILDERS = {2: _table2, 3: _table3, 4: _table4, 5: _table5, 6: _table6}


def table_spec(number: int) -> TableSpec:
    if number not in TABLE_BUILDERS:
        raise ValueError(f"no record-built table {number}; valid: {sorted(TABLE_BUILDERS)} (Table 1 comes from bench)")
    return TABLE_BUILDERS[number]()


# --------------------------------------------------------------------------------------- records
def _model_name(rec: Mapping) -> str:
    model = rec.get("model")
    if isinstance(model, Mapping):
        model = model.get("name")
    return str(model or "").split("/")[-1].lower()


def method_options(rec: Mapping) -> dict:
    """The record's method options: its full ``method_config`` (defaults filled in) when it has one, else
    ``config.method``, overlaid with the record's r / alpha / targets."""
    opts = dict(rec.get("method_config") or (rec.get("config") or {}).get("method") or {})
    for key in ("r", "alpha", "targets"):
        if rec.get(key) is not None:
            opts[key] = rec[key]
    if isinstance(opts.get("targets"), str):
        opts["targets"] = [t for t in re.split(r"[,\s]+", opts["targets"]) if t]
    return opts


def _opt_equal(want, have) -> bool:
    if isinstance(want, tuple):
        return isinstance(have, (list, tuple)) and sorted(map(str, have)) == sorted(want)
    if isinstance(want, (int, float)) and isinstance(have, (int, float)):
        return math.isclose(want, have)
    return want == have


def protocol(rec: Mapping) -> str | None:
    p = (rec.get("config") or {}).get("protocol")
    return None if p in (None, "", "paper") else str(p)


def row_matches(row: Row, rec: Mapping) -> bool:
    if _model_name(rec) != row.model or rec.get("method") != row.method or protocol(rec) != row.protocol:
        return False
    opts = method_options(rec)
    return all(k in opts and _opt_equal(v, opts[k]) for k, v in row.opts)


def cell_value(rec: Mapping, column: Column) -> float | None:
    """The record's number for ``column`` (None when the record lacks that metric)."""
    metrics = rec.get("metrics") or {}
    want = column.metric or rec.get("main_metric")
    if want is None:
        return None
    by_norm = {_norm(k): v for k, v in metrics.items()}
    v = by_norm.get(_norm(want))
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


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


def _params_of(rec: Mapping) -> int | None:
    v = rec.get("trainable_params_paper", rec.get("trainable_params"))
    return int(v) if isinstance(v, (int, float)) else None


def build_table(spec: TableSpec, recs: Iterable[Mapping]) -> BuiltTable:
    """Group finished records into the spec's rows (and extra rows) and columns, one value per seed."""
    warnings: list[str] = []
    built = [BuiltRow(r.model, r.label, r, {c.name: Cell({}, []) for c in spec.columns}) for r in spec.rows]
    extra: dict[tuple, BuiltRow] = {}
    paper_models = {r.model for r in spec.rows}
    newest: dict[tuple, str] = {}
    for rec in sorted(recs, key=lambda r: str(r.get("created_at") or "")):
        if rec.get("status") != records_mod.STATUS_FINISHED:
            continue
        task = str(rec.get("task") or "").lower()
        cols = [c for c in spec.columns if task in c.tasks]
        if not cols:
            continue
        targets = [b for b in built if row_matches(b.spec, rec)]
        if not targets:
            if _model_name(rec) in paper_models or (spec.methods and rec.get("method") not in spec.methods):
                continue  # a paper model with options no paper row has: not part of this table
            label = _options_label(str(rec.get("method")), method_options(rec))
            if protocol(rec):
                label += f" [{protocol(rec)}]"
            if (rec.get("config") or {}).get("method_init_from"):
                label += " [init from another run's adapter]"
            key = (_model_name(rec), label)
            if key not in extra:
                extra[key] = BuiltRow(key[0], label, None, {c.name: Cell({}, []) for c in spec.columns})
            targets = [extra[key]]
        seed = rec.get("seed")
        for row in targets:
            for col in cols:
                value = cell_value(rec, col)
                if value is None:
                    warnings.append(f"{rec.get('run_id')}: no metric {col.metric or rec.get('main_metric')!r} "
                                    f"for column {col.name!r}; have {sorted((rec.get('metrics') or {}))}")
                    continue
                cell = row.cells[col.name]
                slot = (row.model, row.label, col.name, seed)
                if seed in cell.values:
                    warnings.append(f"table {spec.number} {row.model} {row.label} {col.name} seed {seed}: "
                                    f"{rec.get('run_id')} replaces older {newest[slot]}")
                cell.values[seed] = value
                newest[slot] = str(rec.get("run_id"))
                p = _params_of(rec)
                if p is not None:
                    cell.params.append(p)
    return BuiltTable(spec, built + sorted(extra.values(), key=lambda b: (b.model, b.label)), warnings)


# ---------------------------------------------------------------------------------------- layout
def _fmt(x: float | None, nd: int = 1) -> str:
    return MISSING if x is None else f"{x:.{nd}f}"


def _decimals(spec: TableSpec, col: str) -> int:
    return 2 if col in ("NIST", "CIDEr") else 1


def _fmt_params(n: float | None) -> str:
    if n is None:
        return MISSING
    if n < 1e5:
        return f"{n:,.0f}"
    return f"{n / 1e6:.2f}M" if n < 1e8 else f"{n / 1e6:.1f}M"


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
                            paper_model=row.spec.paper_model if row.spec else "", marker=row.spec.marker if row.spec else "",
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
                            paper_model=row.spec.paper_model if row.spec else "", marker=row.spec.marker if row.spec else "",
                            params=ours_params, paper_params=row.spec.paper_params if row.spec else "",
                            column="Avg", ours=avg, std=None, n=n if avg is not None else 0, seeds="",
                            paper=paper, paper_pm=None, delta=None if avg is None or paper is None else avg - paper))
    return out


def _column_names(spec: TableSpec) -> list[str]:
    return [c.name for c in spec.columns] + (["Avg"] if spec.avg else [])


def _cell_text(d: dict, nd: int, tex: bool = False) -> str:
    pm = " $\\pm$ " if tex else " ± "
    ours = _fmt(d["ours"], nd) + (pm + _fmt(d["std"], nd) if d["std"] is not None else "")
    ours += f" (n={d['n']})" if d["column"] != "Avg" or d["ours"] is None else ""
    if d["paper"] is None:
        return ours
    delta = "" if d["delta"] is None else f", Δ {d['delta']:+.{nd}f}"
    if tex:
        delta = delta.replace("Δ", "$\\Delta$").replace("-", "$-$")
    return f"{ours} / {_fmt(d['paper'], nd)}{delta}"


def _grid(t: BuiltTable) -> tuple[list[str], list[list[str]], list[list[dict]]]:
    longs = table_rows(t)
    cols = _column_names(t.spec)
    by_row: dict[tuple, dict] = {}
    for d in longs:
        by_row.setdefault((d["model"], d["method"]), {})[d["column"]] = d
    header = ["Model", "Method", "Params (ours / paper)"] + cols
    body, dicts = [], []
    for row in t.rows:
        cells = by_row[(row.model, row.label)]
        first = cells[cols[0]]
        model = first["paper_model"] or row.model
        if row.spec and row.spec.paper_model and row.spec.paper_model.lower() != row.model:
            model = f"{row.model} (paper: {row.spec.paper_model})" if t.spec.number in (4, 5, 6) else row.spec.paper_model
        params = f"{_fmt_params(first['params'])} / {first['paper_params'] or MISSING}"
        body.append([model, row.label + first["marker"], params] + [cells[c] for c in cols])
        dicts.append([cells[c] for c in cols])
    return header, body, dicts


def without_empty_rows(t: BuiltTable) -> BuiltTable:
    """The table with only the rows that have at least one finished record (e.g. the demo's)."""
    return BuiltTable(t.spec, [r for r in t.rows if any(c.n for c in r.cells.values())], t.warnings)


def to_markdown(t: BuiltTable) -> str:
    header, body, _ = _grid(t)
    legend = (f"Cells: ours ({t.spec.aggregate} over seeds ± sample std, n = seeds) / paper, Δ = ours − paper. "
              f"{MISSING} (n=0): no finished record. * = the paper copied this row from prior work.")
    lines = [f"## Table {t.spec.number}: {t.spec.title}", "", t.spec.note, "", legend, "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cells in body:
        fixed = cells[:3]
        rest = [_cell_text(d, _decimals(t.spec, d["column"])) for d in cells[3:]]
        lines.append("| " + " | ".join(fixed + rest) + " |")
    return "\n".join(lines) + "\n"


def _tex_escape(s: str) -> str:
    return (s.replace("\\", "\\textbackslash{}").replace("&", "\\&").replace("%", "\\%").replace("_", "\\_")
            .replace("#", "\\#").replace("†", "$^\\dagger$").replace("—", "---").replace("*", "$^*$"))


def to_latex(t: BuiltTable) -> str:
    header, body, _ = _grid(t)
    lines = [f"% Table {t.spec.number}: {t.spec.title}. Generated by lora-repro tables from results/runs.",
             "\\begin{tabular}{lll" + "c" * (len(header) - 3) + "}", "\\toprule",
             " & ".join(_tex_escape(h) for h in header) + " \\\\", "\\midrule"]
    for cells in body:
        fixed = [_tex_escape(str(c)) for c in cells[:3]]
        rest = [_cell_text(d, _decimals(t.spec, d["column"]), tex=True).replace("—", "---").replace("±", "$\\pm$")
                for d in cells[3:]]
        lines.append(" & ".join(fixed + rest) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("table", "model", "method", "paper_model", "marker", "params", "paper_params", "column", "ours", "std",
              "n", "seeds", "paper", "paper_pm", "delta")


def to_csv(rows: Sequence[Mapping]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for d in rows:
        w.writerow({k: ("" if d.get(k) is None else d.get(k)) for k in CSV_FIELDS})
    return buf.getvalue()


# --------------------------------------------------------------------------------------- table 1
def load_latency(bench_dir: str | Path) -> tuple[list[dict], list[str]]:
    """Latency lines from ``bench/*.jsonl`` (see module docstring) and problems found on the way."""
    lines, problems = [], []
    for path in sorted(Path(bench_dir).glob("*.jsonl")):
        for i, raw in enumerate(path.read_text().splitlines(), 1):
            if not raw.strip():
                continue
            try:
                d = json.loads(raw)
            except json.JSONDecodeError as e:
                problems.append(f"{path}:{i}: not valid JSON: {e}")
                continue
            if not isinstance(d, dict) or d.get("kind", "latency") != "latency":
                continue
            missing = [k for k in ("model", "batch", "seq", "method", "mean_ms") if k not in d]
            if missing:
                problems.append(f"{path}:{i}: latency line lacks {missing}")
                continue
            lines.append(d)
    return lines, problems


TABLE1_METHODS = {"Fine-Tune/LoRA": ("ft", "lora"), "AdapterL": ("adapter_l",), "AdapterH": ("adapter_h",)}


def build_table1(lines: Sequence[Mapping], model: str = "gpt2-medium") -> list[dict]:
    """Table 1 rows: paper (batch, seq, |Θ|, method) with our latency (nearest |Θ| among our lines)."""
    ours: dict[tuple, list[Mapping]] = {}
    for d in lines:
        if str(d["model"]).split("/")[-1].lower() == model:
            ours.setdefault((int(d["batch"]), int(d["seq"]), d["method"]), []).append(d)
    out = []
    for r in _read_csv("table1_latency.csv"):
        batch, seq = int(r["batch_size"]), int(r["seq_len"])
        theta = _num(r["theta_adapter_params"].rstrip("M"))
        cands = [d for m in TABLE1_METHODS[r["method"]] for d in ours.get((batch, seq, m), [])]
        if cands and theta is not None and r["method"] != "Fine-Tune/LoRA":
            with_theta = [d for d in cands if d.get("adapter_params")]
            if with_theta:
                cands = [min(with_theta, key=lambda d: abs(d["adapter_params"] / 1e6 - theta))]
        best = cands[-1] if cands else None
        out.append(dict(batch=batch, seq=seq, paper_theta=r["theta_adapter_params"], method=r["method"],
                        ours_method=best["method"] if best else None,
                        ours_theta=best.get("adapter_params") if best else None,
                        ours_ms=float(best["mean_ms"]) if best else None,
                        ours_std=float(best["std_ms"]) if best and best.get("std_ms") is not None else None,
                        paper_ms=_num(r["latency_ms"]), paper_pm=_num(r["latency_pm_ms"]),
                        paper_overhead_pct=_num(r["overhead_pct_vs_finetune"])))
    base = {(d["batch"], d["seq"]): d["ours_ms"] for d in out if d["method"] == "Fine-Tune/LoRA"}
    for d in out:
        ref = base.get((d["batch"], d["seq"]))
        d["ours_overhead_pct"] = (None if d["method"] == "Fine-Tune/LoRA" or ref in (None, 0) or d["ours_ms"] is None
                                  else 100.0 * (d["ours_ms"] - ref) / ref)
        d["delta_ms"] = None if d["ours_ms"] is None else d["ours_ms"] - d["paper_ms"]
    return out


def table1_markdown(rows: Sequence[Mapping]) -> str:
    lines = ["## Table 1: inference latency of one forward pass, GPT-2 medium (ms)", "",
             "Ours: results/bench/*.jsonl (this machine's GPU); paper: Quadro RTX8000, mean of 100 trials. "
             f"Overhead vs Fine-Tune/LoRA at the same batch/seq. {MISSING}: not measured.", "",
             "| Batch | Seq | Θ adapter (paper / ours) | Method | ours ms | paper ms | Δ ms | overhead ours / paper |",
             "|---|---|---|---|---|---|---|---|---|"]
    for d in rows:
        ours = _fmt(d["ours_ms"]) + (f" ± {d['ours_std']:.1f}" if d["ours_std"] is not None else "")
        theta = f"{d['paper_theta']} / {_fmt_params(d['ours_theta']) if d['ours_theta'] else MISSING}"
        ov = f"{_fmt(d['ours_overhead_pct'])}% / {_fmt(d['paper_overhead_pct'])}%" if d["method"] != "Fine-Tune/LoRA" else ""
        delta = "" if d["delta_ms"] is None else f"{d['delta_ms']:+.1f}"
        lines.append(f"| {d['batch']} | {d['seq']} | {theta} | {d['method']} | {ours} | "
                     f"{_fmt(d['paper_ms'])} ± {_fmt(d['paper_pm'])} | "
                     f"{delta} | {ov} |")
    return "\n".join(lines) + "\n"


def table1_latex(rows: Sequence[Mapping]) -> str:
    lines = ["% Table 1: GPT-2 medium forward latency (ms). Generated by lora-repro tables from results/bench.",
             "\\begin{tabular}{rrllccc}", "\\toprule",
             "Batch & Seq & $|\\Theta|$ & Method & ours & paper & overhead ours / paper \\\\", "\\midrule"]
    for d in rows:
        ours = _fmt(d["ours_ms"]).replace("—", "---")
        ov = (f"{_fmt(d['ours_overhead_pct'])}\\% / {_fmt(d['paper_overhead_pct'])}\\%".replace("—", "---")
              if d["method"] != "Fine-Tune/LoRA" else "")
        lines.append(f"{d['batch']} & {d['seq']} & {d['paper_theta']} & {_tex_escape(d['method'])} & {ours} & "
                     f"{_fmt(d['paper_ms'])}$\\pm${_fmt(d['paper_pm'])} & {ov} \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


TABLE1_FIELDS = ("batch", "seq", "paper_theta", "method", "ours_method", "ours_theta", "ours_ms", "ours_std", "paper_ms",
                 "paper_pm", "delta_ms", "ours_overhead_pct", "paper_overhead_pct")


# ------------------------------------------------------------------------------------------ main
def load_finished(results_dir: str | Path, err=None) -> list[dict]:
    """All well-formed records; every corrupt/malformed file is reported on ``err`` with its path."""
    err = err or sys.stderr
    good, bad = records_mod.load_records(results_dir)
    for path, why in bad:
        print(f"lora-repro tables: skipping {path}: {why}", file=err)
    return good


def write_tables(results_dir: str | Path, out_dir: str | Path | None = None, numbers: Sequence[int] = (1, 2, 3, 4, 5, 6),
                 err=None, skip_empty_rows: bool = False) -> dict[int, Path]:
    """Write table{N}.md/.csv/.tex for each requested table; returns {N: markdown path}."""
    err = err or sys.stderr
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir else results_dir / "tables"
    out_dir.mkdir(parents=True, exist_ok=True)
    recs = load_finished(results_dir, err) if any(n != 1 for n in numbers) else []
    written = {}
    for n in numbers:
        if n == 1:
            lines, problems = load_latency(results_dir / "bench")
            for p in problems:
                print(f"lora-repro tables: {p}", file=err)
            rows = build_table1(lines)
            md, tex = table1_markdown(rows), table1_latex(rows)
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=TABLE1_FIELDS, lineterminator="\n")
            w.writeheader()
            w.writerows({k: ("" if d.get(k) is None else d.get(k)) for k in TABLE1_FIELDS} for d in rows)
            text_csv = buf.getvalue()
        else:
            t = build_table(table_spec(n), recs)
            if skip_empty_rows:
                t = without_empty_rows(t)
            for w in t.warnings:
                print(f"lora-repro tables: {w}", file=err)
            md, tex, text_csv = to_markdown(t), to_latex(t), to_csv(table_rows(t))
        for ext, text in (("md", md), ("tex", tex), ("csv", text_csv)):
            _write_text(out_dir / f"table{n}.{ext}", text)
        written[n] = out_dir / f"table{n}.md"
    return written


def _write_text(path: Path, text: str) -> None:
    """Write via a temp file + rename, so a reader never sees half a table."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _table_list(s: str) -> list[int]:
    try:
        nums = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tables must be comma-separated numbers from 1-6, got {s!r}")
    bad = [n for n in nums if n not in range(1, 7)]
    if bad:
        raise argparse.ArgumentTypeError(f"no table {bad}; valid tables: 1, 2, 3, 4, 5, 6")
    return nums


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lora-repro tables", description="rebuild the paper's tables 1-6 from run records")
    p.add_argument("--results", default="results", help="results directory holding runs/ and bench/ (default: results)")
    p.add_argument("--out", default=None, help="output directory (default: <results>/tables)")
    p.add_argument("--tables", type=_table_list, default=[1, 2, 3, 4, 5, 6], help="e.g. 2,3 (default: all)")
    p.add_argument("--print", dest="show", type=_table_list, default=[], help="also print these tables' markdown")
    p.add_argument("--skip-empty-rows", action="store_true",
                   help="leave out the paper's rows that have no finished record (e.g. for the demo)")
    args = p.parse_args(argv)
    written = write_tables(args.results, args.out, args.tables, skip_empty_rows=args.skip_empty_rows)
    for n, path in written.items():
        print(f"table {n}: {path} (+ .csv, .tex)")
    for n in args.show:
        if n in written:
            print()
            print(written[n].read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
