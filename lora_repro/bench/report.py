"""Benchmark output: one JSON line per measurement and a summary of same-run ratios (Table 1 beside the paper
is `lora_repro.report.table1`, which reads these lines).

`results/bench/<name>.jsonl` gets one line per measurement (appended; every line of one invocation shares a
`run_id`). Ratios are only ever taken between lines of the same run: same machine, same load, same versions.
"""
from __future__ import annotations

import json
import statistics
import time
import uuid
from collections import defaultdict
from pathlib import Path

import torch


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def environment(device: torch.device) -> dict:
    """Versions and machine, stored in every line."""
    import transformers

    from .measure import device_name
    env = {"device": device_name(device), "device_type": device.type, "torch": torch.__version__,
           "transformers": transformers.__version__}
    try:
        import peft
        env["peft"] = peft.__version__
    except ImportError:
        env["peft"] = None
    return env


def append_jsonl(path: str | Path, row: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


_RENAMED = {"peak_mem_bytes": "peak_memory_bytes", "peak_mem_kind": "peak_memory_kind"}  # lines before the rename


def upgrade(row: dict) -> dict:
    """A bench line in today's names (lines written before the peak-memory rename say peak_mem_*)."""
    return {_RENAMED.get(k, k): v for k, v in row.items() if not (k in _RENAMED and _RENAMED[k] in row)}


def read_jsonl(directory: str | Path) -> list[dict]:
    rows = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                rows.append(upgrade(json.loads(line)))
    return rows


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}"


def _options_label(options: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(options.items()))


def merge_repeats(rows: list[dict]) -> list[dict]:
    """One row per (method, impl, ablation): the median tokens/s, step time and peak memory over its repeats."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in map(upgrade, rows):
        groups[(r["method"], r["impl"], r.get("ablation", "all_on"))].append(r)
    out = []
    for group in groups.values():
        merged = dict(group[0])
        for key in ("tokens_per_s", "step_ms_median", "peak_memory_bytes"):
            merged[key] = statistics.median(r[key] for r in group)
        merged["repeats"] = len(group)
        out.append(merged)
    return out


def train_ratios(rows: list[dict]) -> dict[str, float]:
    """Same-run ratios of the default-fast-path rows: LoRA/FT and ours/PEFT tokens/s, LoRA/FT peak memory."""
    base = [r for r in merge_repeats(rows) if r["kind"] == "train" and r.get("ablation", "all_on") == "all_on"]
    by = {r["method"]: r for r in base}
    out = {}
    if "lora" in by and "ft" in by:
        out["lora_over_ft_tokens_per_s"] = by["lora"]["tokens_per_s"] / by["ft"]["tokens_per_s"]
        out["lora_over_ft_peak_mem"] = by["lora"]["peak_memory_bytes"] / by["ft"]["peak_memory_bytes"]
    if "lora" in by and "peft_lora" in by:
        out["ours_over_peft_tokens_per_s"] = by["lora"]["tokens_per_s"] / by["peft_lora"]["tokens_per_s"]
        out["ours_over_peft_peak_mem"] = by["lora"]["peak_memory_bytes"] / by["peft_lora"]["peak_memory_bytes"]
    return out


def latency_overheads(rows: list[dict]) -> dict[tuple[int, int], dict[str, float]]:
    """Per (batch, seq): each method's mean latency over the base model's (`ft`), minus 1, in percent."""
    out: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
    lat = [r for r in rows if r["kind"] == "latency"]
    base = {(r["batch"], r["seq"]): r["mean_ms"] for r in lat if r["method"] == "ft"}
    for r in lat:
        key = (r["batch"], r["seq"])
        if key in base:
            out[key][r["method"]] = 100.0 * (r["mean_ms"] / base[key] - 1.0)
    return dict(out)


def _train_section(rows: list[dict]) -> list[str]:
    first = rows[0]
    merged = merge_repeats(rows)
    repeats = max(r["repeats"] for r in merged)
    lines = [f"Training step (forward + backward + AdamW), {first['model']}, "
             f"batch {first['batch']} x seq {first['seq']}, {first['precision']}, median of {first['trials']} steps "
             f"after {first['warmup']} warmup{f', median over {repeats} interleaved repeats' if repeats > 1 else ''}; "
             f"peak memory: {first['peak_memory_kind']}.", "",
             "| method | impl | fast paths | trainable | tokens/s | step ms (median) | peak mem GiB |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in merged:
        lines.append(f"| {r['method']} | {r['impl']} | {r.get('ablation', 'all_on')} | {r['trainable_params']:,} | "
                     f"{r['tokens_per_s']:,.0f} | {r['step_ms_median']:.1f} | {_gib(r['peak_memory_bytes'])} |")
    ratios = train_ratios(rows)
    if ratios:
        lines += ["", "Ratios (same run): " + "; ".join(f"{k} = {v:.2f}" for k, v in ratios.items())]
    ablated = [r for r in merged if r.get("ablation", "all_on") != "all_on"]
    if ablated:
        on = {r["method"]: r for r in merged if r.get("ablation", "all_on") == "all_on"}
        lines += ["", "Fast paths, one switched at a time "
                      "(tokens/s all-on / variant; > 1: the default setting is faster):"]
        for r in ablated:
            ref = on.get(r["method"])
            if ref:
                lines.append(f"- {r['method']} {r['ablation']}: {_ratio(ref['tokens_per_s'], r['tokens_per_s'])}x "
                             f"tokens/s, peak memory {_ratio(ref['peak_memory_bytes'], r['peak_memory_bytes'])}x")
    return lines


def _latency_section(rows: list[dict]) -> list[str]:
    first = rows[0]
    lines = [f"Inference latency (one forward pass), {first['model']}, "
             f"{first['precision']}, mean ± std over {first['trials']} trials.", "",
             "| batch | seq | method | adapter params | ms | overhead vs ft |",
             "| ---: | ---: | --- | ---: | ---: | ---: |"]
    over = latency_overheads(rows)
    for r in rows:
        pct = over.get((r["batch"], r["seq"]), {}).get(r["method"])
        lines.append(f"| {r['batch']} | {r['seq']} | {r['method']} | {r.get('adapter_params') or '-'} | "
                     f"{r['mean_ms']:.2f} ± {r['std_ms']:.2f} | {'-' if pct is None else f'{pct:+.1f}%'} |")
    for method in ("lora_unmerged", "lora", "adapter_l", "adapter_h"):
        cells = [f"{b}x{s} {o[method]:+.1f}%" for (b, s), o in over.items() if method in o]
        if cells:
            lines += ["", f"{method} overhead vs ft (same run): " + ", ".join(cells)]
    return lines


def summary_markdown(rows: list[dict]) -> str:
    """Every run, newest first, with its ratios; measurements from different runs are never compared."""
    rows = [upgrade(r) for r in rows]   # lines read elsewhere may still say peak_mem_*
    runs: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        runs[r["run_id"]].append(r)
    out = ["# Benchmark summary", "",
           "Generated by `lora-repro bench summary` from `results/bench/*.jsonl`; "
           "ratios compare lines of one run only.",
           ""]
    for run_id in sorted(runs, reverse=True):
        run = runs[run_id]
        first = run[0]
        out += [f"## Run {run_id}", "",
                f"{first['device']}; torch {first['torch']}, transformers {first['transformers']}, "
                f"peft {first.get('peft')}", ""]
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for r in run:
            groups[(r["kind"], r["model"], r["precision"], r["batch"] if r["kind"] == "train" else 0)].append(r)
        for (kind, *_), group in groups.items():
            out += (_train_section(group) if kind == "train" else _latency_section(group)) + [""]
    return "\n".join(out)


def write_summary(bench_dir: str | Path) -> Path:
    path = Path(bench_dir) / "summary.md"
    path.write_text(summary_markdown(read_jsonl(bench_dir)))
    return path
