"""`lora-repro successors`: LoRA's successors beside LoRA at LoRA's budget, from run records: GLUE on RoBERTa-base
(Table 2's columns and protocol: median over seeds) and E2E on GPT-2 medium (Table 3's: mean), with each
successor's own paper figure beside ours where that paper reports one on the setting
(`lora_repro/paper/data/successors_reported.csv`; none of them does, and its notes say what each evaluates instead).

Rows are the settings of `lora_repro.paper.successors` (what the `successors` preset runs); records of the same
methods on other models (e.g. a tiny CPU run) become extra rows under the same columns.
Output: ``<results>/tables/successors_{glue,e2e}.{md,csv,tex}``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..paper.successors import LABELS, SETTING_TASKS, SETTINGS, SUCCESSORS, reported
from ..paths import tables_dir
from .build import build_table, load_finished, table_rows
from .render import to_csv, to_latex, to_markdown, write_text
from .specs import E2E_METRICS, GLUE_COLUMNS, GLUE_TASKS, Column, Row, TableSpec, num

TABLES = {"glue": "roberta-base", "e2e": "gpt2-medium"}


def _columns(which: str) -> tuple[Column, ...]:
    if which == "glue":
        return tuple(Column(c, (f"glue/{t}",)) for c, t in zip(GLUE_COLUMNS, GLUE_TASKS))
    return tuple(Column(m, ("e2e",), metric=m) for m in E2E_METRICS)


def _paper_figures(method: str, model: str, which: str) -> dict:
    """column -> (value, None) for every figure the successor's paper reports on this setting."""
    out = {}
    for r in reported():
        if r["method"] == method and r["model"] == model and r["task"] == which and num(r["value"]) is not None:
            out[r["metric"]] = (num(r["value"]), None)
    return out


def successors_spec(which: str) -> TableSpec:
    if which not in TABLES:
        raise ValueError(f"no successors table {which!r}; valid: {', '.join(TABLES)}")
    model = TABLES[which]
    rows = []
    for method, setting in SETTINGS[model].items():
        opts = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in setting.items()
                            if k not in ("name", "alpha", "dropout")))
        rows.append(Row(model, LABELS[method], method, opts, None, model, "", _paper_figures(method, model, which)))
    title = f"LoRA's successors at LoRA's budget: {model}, {SETTING_TASKS[model]}"
    note = ("median over seeds, as Table 2" if which == "glue" else "mean over seeds, as Table 3") + \
        "; paper = the successor's own paper on this setting (none reports one: see successors_reported.csv)"
    return TableSpec(0, title, _columns(which), tuple(rows), "median" if which == "glue" else "mean",
                     avg=which == "glue", methods=SUCCESSORS, note=note)


def write_successors(results_dir: str | Path, out_dir: str | Path | None = None, err=None) -> dict[str, Path]:
    """Write successors_{glue,e2e}.md/.csv/.tex; returns {name: markdown path}."""
    err = err or sys.stderr
    out_dir = Path(out_dir) if out_dir else tables_dir(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recs = load_finished(results_dir, err)
    written = {}
    for which in TABLES:
        t = build_table(successors_spec(which), recs)
        for w in t.warnings:
            print(f"lora-repro successors: {w}", file=err)
        md = to_markdown(t).replace("## Table 0: ", f"## Successors ({which.upper()}): ", 1)
        for ext, text in (("md", md), ("tex", to_latex(t)), ("csv", to_csv(table_rows(t)))):
            write_text(out_dir / f"successors_{which}.{ext}", text)
        written[which] = out_dir / f"successors_{which}.md"
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lora-repro successors", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="results", help="results directory holding runs/ (default: results)")
    p.add_argument("--out", default=None, help="output directory (default: <results>/tables)")
    p.add_argument("--print", dest="show", action="store_true", help="also print the tables' markdown")
    args = p.parse_args(argv)
    for which, path in write_successors(args.results, args.out).items():
        print(f"successors {which}: {path} (+ .csv, .tex)")
        if args.show:
            print()
            print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
