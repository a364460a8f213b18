"""Records -> the paper's tables and figures (`lora-repro tables`, `lora-repro plots`). Imports no torch.

One job per module: `specs` (the paper's Tables 2-6 read from its CSVs), `cells` (which runs a paper cell
counts: its preset job's identity, seed aside), `build` (records -> cells),
`render` (md/tex/csv), `table1` (Table 1 from benchmark lines: builder, renderers and its one writer),
`plots` (figures). This module writes them all: `write_tables` and `main` (`lora-repro tables`,
`python -m lora_repro.report`).

Output: ``<results>/tables/table{N}.{md,csv,tex}``. Corrupt or malformed records are reported on stderr
with their path and skipped; failed records count as missing.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..paths import bench_dir, tables_dir
from .build import load_finished, preset_table, table_rows, without_empty_rows
from .render import to_csv, to_latex, to_markdown, write_text
from .specs import table_spec
from .table1 import write_table1

__all__ = ["main", "write_tables"]
TABLES = (1, 2, 3, 4, 5, 6)
OUR_TABLES = ("demo",)     # not in the paper; written only when asked for (`--tables demo`, `make demo`)


def write_tables(results_dir: str | Path, out_dir: str | Path | None = None, numbers: Sequence[int | str] = TABLES,
                 err=None, skip_empty_rows: bool = False, preset_overrides: Sequence[str] = ()) -> dict[int, Path]:
    """Write table{N}.md/.csv/.tex for each requested table (`<name>.md`... for OUR_TABLES); returns
    {N: markdown path}."""
    err = err or sys.stderr
    out_dir = Path(out_dir) if out_dir else tables_dir(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recs = load_finished(results_dir, err) if any(n != 1 for n in numbers) else []
    written = {}
    for n in numbers:
        if n == 1:
            written[n] = write_table1(bench_dir(results_dir), out_dir, err)
            continue
        t = preset_table(table_spec(n), recs, cache_dir=out_dir, overrides=preset_overrides)
        if skip_empty_rows:
            t = without_empty_rows(t)
        for w in t.warnings:
            print(f"lora-repro tables: {w}", file=err)
        stem = f"table{n}" if isinstance(n, int) else str(n)
        for ext, text in (("md", to_markdown(t)), ("tex", to_latex(t)), ("csv", to_csv(table_rows(t)))):
            write_text(out_dir / f"{stem}.{ext}", text)
        written[n] = out_dir / f"{stem}.md"
    return written


def _table_list(s: str) -> list[int | str]:
    items = [x.strip() for x in s.split(",") if x.strip()]
    nums = [int(x) if x.isdigit() else x for x in items]
    bad = [n for n in nums if n not in TABLES and n not in OUR_TABLES]
    if bad:
        raise argparse.ArgumentTypeError(f"no table {', '.join(map(str, bad))} in {s!r}; valid tables: "
                                         f"{', '.join(map(str, TABLES + OUR_TABLES))}")
    return nums


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lora-repro tables", description="rebuild the paper's tables 1-6 from run records")
    p.add_argument("--results", default="results", help="results directory holding runs/ and bench/ (default: results)")
    p.add_argument("--out", default=None, help="output directory (default: <results>/tables)")
    p.add_argument("--tables", type=_table_list, default=list(TABLES),
                   help="e.g. 2,3 (default: 1-6; `demo`: the CPU demo's)")
    p.add_argument("--print", dest="show", type=_table_list, default=[], help="also print these tables' markdown")
    p.add_argument("--skip-empty-rows", action="store_true",
                   help="leave out the paper's rows that have no finished record (e.g. for the demo)")
    p.add_argument("--preset-override", action="append", default=[], metavar="OVERRIDE",
                   help="an override the sweeps ran with besides the preset (as in make ARGS, e.g. "
                        "+batch_reading=paper): a paper cell counts the runs of the preset composed with it")
    args = p.parse_args(argv)
    try:
        written = write_tables(args.results, args.out, args.tables, skip_empty_rows=args.skip_empty_rows,
                               preset_overrides=args.preset_override)
    except OSError as e:  # e.g. a colleague's read-only results dir: the tables can go elsewhere
        print(f"lora-repro tables: {e.filename or args.out or tables_dir(args.results)}: {e.strerror or e}; to "
              f"write the tables elsewhere (e.g. from a read-only results dir) pass --out DIR", file=sys.stderr)
        return 2
    for n, path in written.items():
        print(f"table {n}: {path} (+ .csv, .tex)")
    for n in args.show:
        if n in written:
            print()
            print(written[n].read_text())
    return 0
