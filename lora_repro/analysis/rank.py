"""Which rank is enough (paper Sec 7.2, Table 6): the smallest r within a tolerance of the best.

From a rank sweep's records, per (model, task, target set): the median main metric over seeds at
each r, the best median, and the smallest r whose median is within ``tolerance`` points of it
(0.5 by default). Points are on the paper's scale: a metric reported as a fraction (accuracy 0.873)
is multiplied by 100 first, so 0.5 means half a percentage point, not half the range.
"""
from __future__ import annotations

import csv
import statistics
from collections.abc import Iterable
from pathlib import Path

from ..methods import methods_with
from ..paths import paper_csv
from ..records import is_finished, method_name, metric_value
from .adapters import LOW_RANK, AnalysisError, has_low_rank_factors

PAPER_TABLE6 = paper_csv("table6_rank.csv")
_TARGET_ORDER = {"q": 0, "k": 1, "v": 2, "o": 3}


def target_set(targets) -> str:
    """Canonical spelling of a target set: 'q,v' whatever the order or form it was given in."""
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.replace("+", ",").split(",") if t.strip()]
    return ",".join(sorted(targets or [], key=lambda t: (_TARGET_ORDER.get(t, 9), t)))


def metric_scale(values: Iterable[float], scale: str = "auto") -> float:
    """100 for metrics stored as fractions (every |value| <= 1), else 1; or the scale given."""
    if scale != "auto":
        return float(scale)
    return 100.0 if all(abs(v) <= 1.0 for v in values) else 1.0


def lora_results(records: list[dict]) -> tuple[dict[tuple[str, str, str], dict[int, list[float]]], dict, list[str]]:
    """Finished runs of methods with low-rank factors (LoRA) grouped as (model, task, target set) -> r ->
    metric values over seeds, the main-metric name per group, and why any record was skipped."""
    groups: dict[tuple[str, str, str], dict[int, list[float]]] = {}
    metric_names: dict[tuple[str, str, str], str] = {}
    skipped = []
    for rec in records:
        if not is_finished(rec) or not has_low_rank_factors(method_name(rec)):
            continue
        name = rec.get("main_metric")
        value = metric_value(rec)
        r = rec.get("r")
        if not isinstance(r, int) or isinstance(r, bool) or not isinstance(value, (int, float)):
            skipped.append(f"{rec.get('run_id')}: no integer r (r={r!r}) or no value for main metric {name!r}")
            continue
        key = (str(rec.get("model")), str(rec.get("task")), target_set(rec.get("targets")))
        if metric_names.setdefault(key, name) != name:
            raise AnalysisError(f"{key}: records disagree on the main metric ({metric_names[key]!r} vs {name!r})")
        groups.setdefault(key, {}).setdefault(int(rec["r"]), []).append(float(value))
    return groups, metric_names, skipped


def select_rank(values_by_r: dict[int, list[float]], tolerance: float = 0.5, scale: str = "auto") -> dict:
    """Medians per r (in points), the best, and the smallest r within ``tolerance`` of the best."""
    factor = metric_scale([v for vs in values_by_r.values() for v in vs], scale)
    medians = {r: statistics.median(vs) * factor for r, vs in sorted(values_by_r.items())}
    best = max(medians.values())
    best_r = min(r for r, m in medians.items() if m == best)
    chosen = min(r for r, m in medians.items() if m >= best - tolerance)
    return {"medians": medians, "seeds": {r: len(vs) for r, vs in sorted(values_by_r.items())},
            "scale": factor, "best_r": best_r, "best": best, "selected_r": chosen, "selected": medians[chosen]}


def rank_table(records: list[dict], tolerance: float = 0.5, scale: str = "auto") -> tuple[list[dict], list[str]]:
    """One row per (model, task, target set) of the records, and the skipped-record notes."""
    groups, names, skipped = lora_results(records)
    if not groups:
        raise AnalysisError(f"no finished records of a method with low-rank factors "
                            f"({', '.join(methods_with(LOW_RANK))}) with an integer r and a main-metric value to "
                            f"select a rank from")
    rows = []
    for key, by_r in sorted(groups.items()):
        sel = select_rank(by_r, tolerance, scale)
        rows.append({"model": key[0], "task": key[1], "targets": key[2], "main_metric": names[key],
                     "points_per_unit": sel["scale"], "tolerance": tolerance,
                     "ranks": ";".join(str(r) for r in sel["medians"]),
                     "medians": ";".join(f"{m:.4g}" for m in sel["medians"].values()),
                     "seeds": ";".join(str(n) for n in sel["seeds"].values()),
                     "best_r": sel["best_r"], "best_median": sel["best"],
                     "selected_r": sel["selected_r"], "selected_median": sel["selected"]})
    return rows, skipped


def paper_rank_table(tolerance: float = 0.5, path: Path = PAPER_TABLE6) -> list[dict]:
    """The same rule applied to the paper's Table 6 (GPT-3 175B, WikiSQL and MultiNLI), for reference."""
    records = []
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            for task in ("WikiSQL", "MultiNLI"):
                records.append({"status": "finished", "method": "lora", "model": rec["model"] + " (paper)",
                                "task": task, "targets": target_set(rec["weight_types"].replace("W", "")),
                                "r": int(rec["rank_r"]), "main_metric": "acc",
                                "metrics": {"acc": float(rec[f"{task}_acc"])}})
    return rank_table(records, tolerance, scale="1")[0]


def rank_markdown(rows: list[dict], paper: list[dict] | None = None) -> str:
    """A markdown table: medians per r, the best, and the selected (smallest sufficient) r."""
    def table(rows):
        out = ["| model | task | targets | metric | median per r (seeds) | best r (median) | selected r (median) |",
               "|---|---|---|---|---|---|---|"]
        for row in rows:
            per_r = ", ".join(f"r={r}: {float(m):.2f} ({n})" for r, m, n in
                              zip(row["ranks"].split(";"), row["medians"].split(";"), row["seeds"].split(";")))
            out.append(f"| {row['model']} | {row['task']} | {row['targets']} | {row['main_metric']} | {per_r} | "
                       f"{row['best_r']} ({row['best_median']:.2f}) | **{row['selected_r']}** "
                       f"({row['selected_median']:.2f}) |")
        return out

    tol = rows[0]["tolerance"] if rows else 0.5
    lines = [f"Smallest r whose median main metric (over seeds, in points) is within {tol} of the best median.", ""]
    lines += table(rows)
    if paper:
        lines += ["", "The same rule on the paper's Table 6 (GPT-3 175B; one run per cell, seed std ±0.5 / ±0.1):",
                  ""] + table(paper)
    return "\n".join(lines) + "\n"
