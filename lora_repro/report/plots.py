"""Figures from run records (PNG, matplotlib Agg): the rank sweep (metric vs rank r, a series per method, target
set and table row, for every method whose records carry an integer `r` option; the paper's Tables 6/18) and
parameter budget vs metric (every method; the paper's Fig. 2). Records are read through `lora_repro.records`.

One figure per (model, task), the main metric of each finished record. Rules that keep a figure honest at a
glance:
- a series is one row of the tables: LoRA and LoRA started from another run's adapter (the paper's MNLI
  initialisation) are two series, as are the paper's † (Houlsby-protocol) rows;
- a line joins the median over seeds of each point, and every run is drawn too (small dots), so a rank plot
  shows every rank run and a reader sees the spread;
- each series has its own hollow marker shape, so identical points of two series stay visible;
- the y axis names the metric (and the task); a dotted line marks chance where one applies (accuracy:
  100 / number of classes; Matthews, Pearson, Spearman: 0), and then the axis spans at least `MIN_Y_SPAN` points;
- a rank figure is drawn only when some series has two ranks or more (one point says nothing about rank).
Written to ``<results>/figures/{rank,budget}_<model>_<task>.png``.
"""
from __future__ import annotations

import argparse
import itertools
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .. import records
from ..paths import figures_dir
from .build import load_finished

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")
ZERO_CHANCE = ("matthews", "pearson", "spearman")
MIN_Y_SPAN = 10.0   # metric points (the paper's x100 scale): the least the y axis shows


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-")


def _params(rec: Mapping) -> float | None:
    v = records.trainable_params(rec)
    return float(v) if v is not None and v > 0 else None


def _targets(opts: Mapping) -> str:
    t = opts.get("targets")
    return ",".join(sorted(map(str, t), key="qkvo".find)) if isinstance(t, (list, tuple)) else ""


def _row_tags(rec: Mapping) -> str:
    """What tells two table rows of one method apart besides its options: the protocol and a started-from adapter."""
    tags = [f"[{records.protocol(rec)}]"] if records.protocol(rec) else []
    if records.init_from(rec):
        tags.append("[init from another run]")
    return " ".join(tags)


def _rank(rec: Mapping) -> int | None:
    r = records.method_options(rec).get("r")
    return r if isinstance(r, int) and not isinstance(r, bool) else None


def _collect(recs: Iterable[Mapping], label: Callable[[Mapping], str], x: Callable[[Mapping], float | None]
             ) -> dict[tuple, dict[str, dict[float, list[float]]]]:
    """{(model, task): {series label: {x: [metric of each finished run]}}}."""
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for rec in recs:
        value = records.metric_value(rec)
        if not records.is_finished(rec) or value is None or x(rec) is None:
            continue
        out[(str(rec.get("model")), str(rec.get("task")))][label(rec)][x(rec)].append(value)
    return out


def _rank_label(rec: Mapping) -> str:
    return " ".join(x for x in (str(rec.get("method")), _targets(records.method_options(rec)), _row_tags(rec)) if x)


def _budget_label(rec: Mapping) -> str:
    return " ".join(x for x in (str(rec.get("method")), _row_tags(rec)) if x)


def _runs_by_x(recs: Iterable[Mapping], rank: bool) -> dict[tuple, dict[str, dict[float, list[float]]]]:
    return _collect(recs, _rank_label, _rank) if rank else _collect(recs, _budget_label, _params)


def _medians(by_x: Mapping[float, list[float]]) -> list[tuple]:
    return sorted((x, statistics.median(v), len(v)) for x, v in by_x.items())


def rank_series(recs: Iterable[Mapping]) -> dict[tuple, dict[str, list[tuple[int, float, int]]]]:
    """{(model, task): {"<method> <target set> [tags]": [(r, median metric, n runs), ...] sorted by r}} over every
    finished record whose method options have an integer r."""
    return {k: {label: _medians(by_x) for label, by_x in series.items()}
            for k, series in _runs_by_x(recs, rank=True).items()}


def budget_points(recs: Iterable[Mapping]) -> dict[tuple, dict[str, list[tuple[float, float, int]]]]:
    """{(model, task): {"<method> [tags]": [(trainable params, median metric, n runs), ...]}} over all methods."""
    return {k: {label: _medians(by_x) for label, by_x in series.items()}
            for k, series in _runs_by_x(recs, rank=False).items()}


def chance_level(task: str, metric: str | None) -> float | None:
    """The metric of a guess, where one applies: accuracy 100 / classes (a classification task this package
    knows), 0 for correlations; None otherwise (F1, generation metrics)."""
    metric = (metric or "").lower()
    if metric in ZERO_CHANCE:
        return 0.0
    if metric != "accuracy":
        return None
    from ..tasks import TASKS  # torch-free: the task classes only
    cls = TASKS.get(task)
    if cls is None or cls.kind != "classification" or not cls.label_names:
        return None
    return 100.0 / len(cls.label_names)


def _metric_of(recs: Iterable[Mapping]) -> dict[tuple, str]:
    """(model, task) -> the main metric its records name ("a/b" when they disagree)."""
    names: dict = defaultdict(set)
    for rec in recs:
        names[(str(rec.get("model")), str(rec.get("task")))].add(str(rec.get("main_metric") or "main metric"))
    return {k: "/".join(sorted(v)) for k, v in names.items()}


def marker_of(series: Iterable[str]) -> dict[str, str]:
    """A marker shape per series label (sorted), all different up to len(MARKERS) series."""
    return dict(zip(sorted(series), itertools.cycle(MARKERS)))


def ylabel(metric: str, task: str, seeds: int) -> str:
    """The y axis: the metric by name, the task, and what a point is when there are several seeds (on a second
    line: one line of it ran off a 6x4 figure's edge)."""
    return f"{metric} on {task}" + ("\n(median over seeds; dots: runs)" if seeds > 1 else "")


def _figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def write_figures(results_dir: str | Path, out_dir: str | Path | None = None, recs=None) -> list[Path]:
    """Write every rank-sweep and budget figure the records allow; returns the PNG paths."""
    out_dir = Path(out_dir) if out_dir else figures_dir(results_dir)
    recs = load_finished(results_dir) if recs is None else list(recs)
    metrics = _metric_of(recs)
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for (model, task), series in sorted(_runs_by_x(recs, rank=True).items()):
        if max(len(by_x) for by_x in series.values()) < 2:
            continue
        written.append(_line_figure(
            series, out_dir / f"rank_{_slug(model)}_{_slug(task)}.png",
            xlabel="r: LoRA rank, adapter bottleneck (log scale)", metric=metrics[(model, task)], task=task,
            title=f"Rank sweep: {model} on {task}", rank=True))
    for (model, task), series in sorted(_runs_by_x(recs, rank=False).items()):
        written.append(_line_figure(
            series, out_dir / f"budget_{_slug(model)}_{_slug(task)}.png",
            xlabel="trainable parameters (the paper's count, log scale)", metric=metrics[(model, task)], task=task,
            title=f"Parameter budget: {model} on {task}", rank=False))
    return written


def _line_figure(series: Mapping[str, Mapping[float, list[float]]], path: Path, *, xlabel: str, metric: str,
                 task: str, title: str, rank: bool) -> Path:
    """One PNG: per series a line through the medians, a dot per run, its own hollow marker; a chance line."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    seeds = max(len(v) for by_x in series.values() for v in by_x.values())
    markers = marker_of(series)
    for label, by_x in sorted(series.items()):
        pts = _medians(by_x)
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[label], markersize=8,
                        fillstyle="none",
                        markeredgewidth=1.5, linestyle="-" if len(pts) > 1 else "", label=label)
        if seeds > 1:
            runs = [(x, v) for x, vs in by_x.items() for v in vs]
            ax.scatter([x for x, _ in runs], [v for _, v in runs], s=10, color=line.get_color(), alpha=0.6)
    chance = chance_level(task, metric)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1.2, label=f"chance ({chance:g})")
    lo, hi = ax.get_ylim()
    if chance is not None and hi - lo < MIN_Y_SPAN:   # a few tenths of a point must not fill the axis
        pad = (MIN_Y_SPAN - (hi - lo)) / 2
        ax.set_ylim(lo - pad, hi + pad)
    if rank:
        ranks = sorted({x for by_x in series.values() for x in by_x})
        ax.set_xscale("log", base=2)
        ax.set_xticks(ranks, [str(r) for r in ranks])
    else:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel(metric, task, seeds))
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lora-repro plots", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
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
