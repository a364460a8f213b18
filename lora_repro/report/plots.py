"""Figures from run records (PNG, matplotlib Agg): the rank sweep (metric vs rank r, one line per method and
target set, for every method whose records carry an integer `r` option; the paper's Tables 6/18) and
parameter budget vs metric (every method; the paper's Fig. 2). Records are read through `lora_repro.records`.

One figure per (model, task), the main metric of each finished record, the median over seeds per
point. Written to ``<results>/figures/{rank,budget}_<model>_<task>.png``.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from .. import records
from ..paths import figures_dir
from .build import load_finished


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-")


def _params(rec: Mapping) -> float | None:
    v = records.trainable_params(rec)
    return float(v) if v is not None and v > 0 else None


def _targets(opts: Mapping) -> str:
    t = opts.get("targets")
    return ",".join(sorted(map(str, t), key="qkvo".find)) if isinstance(t, (list, tuple)) else ""


def rank_series(recs: Iterable[Mapping]) -> dict[tuple, dict[str, list[tuple[int, float, int]]]]:
    """{(model, task): {"<method> <target set>": [(r, median metric, n seeds), ...] sorted by r}} over every
    finished record whose method options have an integer r (a series per method and target set)."""
    points: dict[tuple, dict[str, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for rec in recs:
        value = records.metric_value(rec)
        if not records.is_finished(rec) or value is None:
            continue
        opts = records.method_options(rec)
        r = opts.get("r")
        if not isinstance(r, int) or isinstance(r, bool):
            continue
        label = " ".join(x for x in (str(rec.get("method")), _targets(opts)) if x)
        points[(str(rec.get("model")), str(rec.get("task")))][label][r].append(value)
    return {k: {t: sorted((r, statistics.median(v), len(v)) for r, v in by_r.items()) for t, by_r in series.items()}
            for k, series in points.items()}


def budget_points(recs: Iterable[Mapping]) -> dict[tuple, dict[str, list[tuple[float, float]]]]:
    """{(model, task): {method: [(trainable params, median metric), ...]}} over all methods."""
    pts: dict[tuple, dict[str, dict[float, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for rec in recs:
        value = records.metric_value(rec)
        if not records.is_finished(rec) or value is None or _params(rec) is None:
            continue
        pts[(str(rec.get("model")), str(rec.get("task")))][str(rec.get("method"))][_params(rec)].append(value)
    return {k: {m: sorted((p, statistics.median(v)) for p, v in by_p.items()) for m, by_p in series.items()}
            for k, series in pts.items()}


def _figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def write_figures(results_dir: str | Path, out_dir: str | Path | None = None, recs=None) -> list[Path]:
    """Write every rank-sweep and budget figure the records allow; returns the PNG paths."""
    out_dir = Path(out_dir) if out_dir else figures_dir(results_dir)
    recs = load_finished(results_dir) if recs is None else list(recs)
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for (model, task), series in sorted(rank_series(recs).items()):
        written.append(_line_figure(
            series, out_dir / f"rank_{_slug(model)}_{_slug(task)}.png",
            xlabel="rank r", ylabel=f"{task} (main metric, median over seeds)",
            title=f"Rank sweep: {model} on {task}", xscale={"value": "log", "base": 2}))
    for (model, task), series in sorted(budget_points(recs).items()):
        written.append(_line_figure(
            series, out_dir / f"budget_{_slug(model)}_{_slug(task)}.png",
            xlabel="trainable parameters (the paper's count)", ylabel=f"{task} (main metric)",
            title=f"Parameter budget: {model} on {task}", xscale={"value": "log"}))
    return written


def _line_figure(series: dict, path: Path, *, xlabel: str, ylabel: str, title: str, xscale: dict) -> Path:
    """One PNG: a line per series of (x, y) points (a lone point is drawn as a marker)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, pts in sorted(series.items()):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", linestyle="-" if len(pts) > 1 else "",
                label=label)
    ax.set_xscale(**xscale)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lora-repro plots", description=__doc__)
    p.add_argument("--results", default="results", help="results directory holding runs/ (default: results)")
    p.add_argument("--out", default=None, help="output directory (default: <results>/figures)")
    args = p.parse_args(argv)
    paths = write_figures(args.results, args.out)
    for path in paths:
        print(f"figure: {path}")
    if not paths:
        print("no finished records with a main metric: no figures", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
