"""`lora-repro analyze {subspace,amplification,rank}`: the paper's Sec 7 analyses on finished runs.

    lora-repro analyze subspace RUN_A RUN_B [--layers 0,11] [--targets q,v] [--random-baseline]
    lora-repro analyze amplification RUN [RUN ...] [--base PATH] [--table-layer N]
    lora-repro analyze rank [--results DIR] [--tolerance 0.5]

A RUN is a run id (under --results, default `results`), a run record path, an adapter directory, or
`key=value,...` naming one finished run under --results by model, task, method, seed and r (e.g.
`model=minilm,r=64`). Everything is written under --out (default `<results>/analysis`) and summarised on stdout.
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from .adapters import AnalysisError


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer indices like 0,11; got {text!r}") from None


def _target_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_") or "run"


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def cmd_subspace(args) -> int:
    from .adapters import load_run
    from .plots import heatmap_grid
    from .subspace import compare_runs, grid_rows, random_baseline

    run_a, run_b = load_run(args.run_a, args.results), load_run(args.run_b, args.results)
    if run_a.label == run_b.label:
        run_b.label += "_b"
    grids = compare_runs(run_a, run_b, args.layers, args.targets)
    stem = f"subspace_{_safe(run_a.label)}_vs_{_safe(run_b.label)}"
    rows = []
    for (layer, target), grid in grids.items():
        rows += grid_rows(grid, source="runs", layer=layer, target=target)
    targets = [t for t in run_a.targets if any(t == key[1] for key in grids)]
    ylabel, xlabel = f"i  ({run_a.label}, r={run_a.r})", f"j  ({run_b.label}, r={run_b.r})"
    written = []
    for target in targets:
        panels = [(f"ΔW_{target}, layer {layer}", g) for (layer, t), g in grids.items() if t == target]
        if args.random_baseline:
            some = next(g for (_, t), g in grids.items() if t == target)
            d_in = next(f.A.shape[1] for (_, t), f in run_a.factors.items() if t == target)
            rand = random_baseline(some.shape[0], some.shape[1], d_in, args.seed)
            panels.append(("random Gaussian", rand))
            rows += grid_rows(rand, source="random", layer="", target=target)
        written.append(heatmap_grid(
            panels, Path(args.out) / f"{stem}_{target}.png", ylabel=ylabel, xlabel=xlabel,
            title=f"φ(A1, A2, i, j), A1 of {run_a.label}, A2 of {run_b.label}: top-i vs top-j right-singular "
                  f"vectors of A, target W_{target}"))
    written.insert(0, write_csv(Path(args.out) / f"{stem}.csv", rows))
    print(f"normalized subspace similarity {run_a.label} (r={run_a.r}) vs {run_b.label} (r={run_b.r})")
    print(f"{'layer':>5} {'target':>6} {'phi(1,1)':>9} {'phi(1,r2)':>9} {'phi(r1,r2)':>10} {'mean':>7}")
    for (layer, target), g in grids.items():
        print(f"{layer:>5} {target:>6} {float(g[0, 0]):9.3f} {float(g[0, -1]):9.3f} {float(g[-1, -1]):10.3f} "
              f"{float(g.mean()):7.3f}")
    for p in written:
        print(f"wrote {p}")
    return 0


def cmd_amplification(args) -> int:
    from .adapters import load_run
    from .amplification import BaseWeights, run_amplification, table7_markdown

    runs = [load_run(spec, args.results) for spec in args.runs]
    bases: dict[str, BaseWeights] = {}
    rows = []
    for run in runs:
        source = args.base or run.base_model
        if not source:
            raise AnalysisError(f"run {run.label!r}: adapter_config.json names no base_model; pass --base PATH")
        if source not in bases:
            bases[source] = BaseWeights(source)
        rows += run_amplification(run, bases[source], layers=args.layers, targets=args.targets, seed=args.seed)
    stem = "amplification" if len(runs) > 1 else f"amplification_{_safe(runs[0].label)}"
    csv_path = write_csv(Path(args.out) / f"{stem}.csv", rows)
    md = table7_markdown(rows, args.table_layer, with_paper=not args.no_paper)
    md_path = Path(args.out) / f"{stem}.md"
    md_path.write_text("Paper Table 7: ||UᵀWVᵀ||_F with U, V the top-r singular directions of ΔW, of W, or of "
                       "a random matrix; amplification factor = ||ΔW||_F / ||UᵀWVᵀ||_F (ΔW directions). "
                       "Layers are 0-based; the paper's factors are recomputed from its rounded norms "
                       "(its text says 21.5 and 'around 2').\n\n" + md)
    print(md)
    print(f"wrote {csv_path}\nwrote {md_path}")
    return 0


def cmd_rank(args) -> int:
    from .. import records
    from .rank import paper_rank_table, rank_markdown, rank_table

    if not records.runs_dir(args.results).is_dir():
        raise AnalysisError(f"no run records: {records.runs_dir(args.results)} does not exist (use --results DIR)")
    good, bad = records.load_records(args.results)
    for path, why in bad:
        print(f"skipping {path}: {why}", file=sys.stderr)
    rows, skipped = rank_table(good, args.tolerance, args.metric_scale)
    for note in skipped:
        print(f"skipping record {note}", file=sys.stderr)
    paper = None if args.no_paper else paper_rank_table(args.tolerance)
    csv_path = write_csv(Path(args.out) / "rank_selection.csv", rows)
    md = rank_markdown(rows, paper)
    md_path = Path(args.out) / "rank_selection.md"
    md_path.write_text(md)
    print(md)
    print(f"wrote {csv_path}\nwrote {md_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lora-repro analyze", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{subspace,amplification,rank}")

    def common(p, with_selection=True):
        p.add_argument("--results", default="results", help="results directory (run records, checkpoints)")
        p.add_argument("--out", default=None, help="output directory (default: <results>/analysis)")
        if with_selection:
            p.add_argument("--layers", type=_int_list, default=None, help="only these layer indices, e.g. 0,11")
            p.add_argument("--targets", type=_target_list, default=None, help="only these targets, e.g. q,v")
            p.add_argument("--seed", type=int, default=0, help="seed of the random reference matrices")

    p = sub.add_parser("subspace", help="φ(A1, A2, i, j) between two runs' A matrices (Figures 3, 4)")
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--random-baseline", action="store_true",
                   help="add a panel for two random Gaussian matrices of the same shapes (Figure 4, right)")
    common(p)
    p.set_defaults(func=cmd_subspace)

    p = sub.add_parser("amplification", help="||UᵀWVᵀ||_F and the amplification factor (Table 7)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="one run, or runs at several ranks")
    p.add_argument("--base", default=None, help="pretrained model (hub name or local dir); default: base_model "
                                                "of adapter_config.json")
    p.add_argument("--table-layer", type=int, default=None,
                   help="layer shown in the markdown table "
                        "(default: the middle adapted layer, as the paper's 48 of 96)")
    p.add_argument("--no-paper", action="store_true", help="leave the paper's GPT-3 rows out of the table")
    common(p)
    p.set_defaults(func=cmd_amplification)

    p = sub.add_parser("rank", help="smallest r within --tolerance points of the best median (Table 6)")
    p.add_argument("--tolerance", type=float, default=0.5, help="points below the best median (default 0.5)")
    p.add_argument("--metric-scale", default="auto", choices=["auto", "1", "100"],
                   help="points per metric unit: auto = 100 for metrics stored as fractions, else 1")
    p.add_argument("--no-paper", action="store_true", help="leave the paper's Table 6 out of the markdown")
    common(p, with_selection=False)
    p.set_defaults(func=cmd_rank)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out is None:
        args.out = str(Path(args.results) / "analysis")
    try:
        return args.func(args)
    except AnalysisError as e:
        print(f"lora-repro analyze {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
