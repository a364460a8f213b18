"""The paper's Table 1 (forward latency of GPT-2 medium: fine-tuned/LoRA vs adapters) beside our benchmark
lines: one builder, one renderer per format (md/tex/csv), one writer. `lora-repro tables` and
`lora-repro bench latency` both call `write_table1`, so the file never depends on which ran last.

Input: ``<results>/bench/*.jsonl``, one JSON object per line. A latency line has ``model`` (e.g.
"gpt2-medium"; "gpt2-medium-tiny" with ``tiny: true`` for `bench latency --tiny`), ``batch``, ``seq``,
``method`` ("ft" | "lora" | "lora_unmerged" | "adapter_l" | "adapter_h"), ``mean_ms`` and ``std_ms`` (one
forward pass, mean/std over trials), and optionally ``adapter_params`` (|Θ|), ``run_id``, ``device``,
``precision``, ``trials`` and ``kind`` (lines whose kind is present and not "latency" are ignored).

Rules
- A paper row (batch, seq, method) takes our newest full-size GPT-2 medium line of that shape and method
  (Fine-Tune/LoRA: ``ft``, the base model's forward, else ``lora`` merged into W; adapters: the |Θ| nearest
  the paper's). Tiny lines never fill a paper row: they are listed below it, marked tiny.
- Our overhead is a line's mean over the ``ft`` line of the same run, model, device, precision, batch and
  seq, minus 1 (as `bench summary`): latencies of different runs are never compared.
- Every line no paper row uses (lora merged, lora_unmerged, tiny models, other shapes) is listed under
  "other measurements"; when several lines share (model, device, precision, batch, seq, method, |Θ|), the
  newest (last read) counts.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .render import MISSING, fmt, fmt_params, tex_escape, write_text
from .specs import num, read_csv

PAPER_CSV = "table1_latency.csv"
PAPER_MODEL = "gpt2-medium"
BASE_METHOD = "ft"               # the base model's forward: what the paper calls Fine-Tune (= LoRA merged)
PAPER_METHODS = {"Fine-Tune/LoRA": ("ft", "lora"), "AdapterL": ("adapter_l",), "AdapterH": ("adapter_h",)}
REQUIRED = ("model", "batch", "seq", "method", "mean_ms")
PAPER_SETUP = "NVIDIA Quadro RTX8000, mean of 100 trials (arXiv:2106.09685v2 Table 1)"


def load_latency(bench: str | Path) -> tuple[list[dict], list[str]]:
    """Latency lines from ``<bench>/*.jsonl`` in file order, and the problems found on the way."""
    lines, problems = [], []
    for path in sorted(Path(bench).glob("*.jsonl")):
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
            missing = [k for k in REQUIRED if k not in d]
            if missing:
                problems.append(f"{path}:{i}: latency line lacks {missing}")
                continue
            lines.append(d)
    return lines, problems


def _model(d: Mapping) -> str:
    return str(d["model"]).split("/")[-1].lower()


def _setup(d: Mapping) -> tuple:
    """What must be equal for two lines' latencies to be compared: one run, one model, one machine setup."""
    return d.get("run_id"), _model(d), d.get("device"), d.get("precision"), int(d["batch"]), int(d["seq"])


def _overheads(lines: Sequence[Mapping]) -> list[float | None]:
    """Per line: 100 * (mean / mean of the same setup's ft line - 1), None without such a line."""
    base = {_setup(d): float(d["mean_ms"]) for d in lines if d["method"] == BASE_METHOD}
    out = []
    for d in lines:
        ref = base.get(_setup(d))
        out.append(None if not ref else 100.0 * (float(d["mean_ms"]) / ref - 1.0))
    return out


def _measured_on(d: Mapping | None) -> str:
    if d is None:
        return MISSING
    parts = [str(d[k]) for k in ("device", "precision") if d.get(k)]
    if d.get("trials"):
        parts.append(f"{d['trials']} trials")
    if d.get("run_id"):
        parts.append(f"run {d['run_id']}")
    return ", ".join(parts) or MISSING


def _ours(d: Mapping | None, overhead: float | None) -> dict:
    return dict(ours_model=_model(d) if d else None, tiny=bool(d.get("tiny")) if d else None,
                ours_method=d["method"] if d else None, ours_theta=d.get("adapter_params") if d else None,
                ours_ms=float(d["mean_ms"]) if d else None,
                ours_std=float(d["std_ms"]) if d and d.get("std_ms") is not None else None,
                ours_overhead_pct=overhead, device=d.get("device") if d else None,
                precision=d.get("precision") if d else None, trials=d.get("trials") if d else None,
                run_id=d.get("run_id") if d else None, measured_on=_measured_on(d))


def build_table1(lines: Sequence[Mapping]) -> list[dict]:
    """Table 1 as rows: the paper's 9 rows (section "paper") with our matching line, then every other
    line of ours (section "other"). Each row has the TABLE1_FIELDS."""
    overhead = dict(zip(map(id, lines), _overheads(lines), strict=True))
    full = [d for d in lines if _model(d) == PAPER_MODEL and not d.get("tiny")]
    used: set[int] = set()
    out = []
    for r in read_csv(PAPER_CSV):
        batch, seq, theta = int(r["batch_size"]), int(r["seq_len"]), num(r["theta_adapter_params"].rstrip("M"))
        best = None
        for method in PAPER_METHODS[r["method"]]:      # in order of preference: ft before lora merged
            cands = [d for d in full if (int(d["batch"]), int(d["seq"]), d["method"]) == (batch, seq, method)]
            if cands and theta is not None and r["method"] != "Fine-Tune/LoRA":
                with_theta = [d for d in cands if d.get("adapter_params")]
                if with_theta:
                    gap = min(abs(d["adapter_params"] / 1e6 - theta) for d in with_theta)
                    cands = [d for d in with_theta if abs(d["adapter_params"] / 1e6 - theta) == gap]
            if cands:
                best = cands[-1]
                break
        if best is not None:
            used.add(id(best))
        row = dict(section="paper", batch=batch, seq=seq, method=r["method"], paper_theta=r["theta_adapter_params"],
                   paper_ms=num(r["latency_ms"]), paper_pm=num(r["latency_pm_ms"]),
                   paper_overhead_pct=num(r["overhead_pct_vs_finetune"]),
                   **_ours(best, overhead[id(best)] if best is not None else None))
        if r["method"] == "Fine-Tune/LoRA":
            row["ours_overhead_pct"] = None                 # the reference itself
        have = row["ours_ms"] is not None and row["paper_ms"] is not None
        row["delta_ms"] = row["ours_ms"] - row["paper_ms"] if have else None
        out.append(row)
    newest: dict[tuple, Mapping] = {}
    for d in lines:
        if id(d) not in used:
            newest[(_model(d), d.get("device"), d.get("precision"), int(d["batch"]), int(d["seq"]), d["method"],
                    d.get("adapter_params"))] = d
    for d in sorted(newest.values(), key=lambda d: (bool(d.get("tiny")), _model(d), -int(d["batch"]),
                                                     -int(d["seq"]), str(d["method"]))):
        out.append(dict(section="other", batch=int(d["batch"]), seq=int(d["seq"]), method=d["method"],
                        paper_theta=None, paper_ms=None, paper_pm=None, paper_overhead_pct=None, delta_ms=None,
                        **_ours(d, overhead[id(d)])))
    return out


TABLE1_FIELDS = ("section", "batch", "seq", "method", "paper_theta", "paper_ms", "paper_pm", "paper_overhead_pct",
                 "ours_model", "tiny", "ours_method", "ours_theta", "ours_ms", "ours_std", "ours_overhead_pct",
                 "delta_ms", "device", "precision", "trials", "run_id", "measured_on")


def _pct(x: float | None) -> str:
    return MISSING if x is None else f"{x:+.1f}%"


def _ours_ms(d: Mapping) -> str:
    return fmt(d["ours_ms"], 2) + (f" ± {d['ours_std']:.2f}" if d["ours_std"] is not None else "")


def _model_label(d: Mapping) -> str:
    return f"{d['ours_model']}{' (tiny: not the paper shape)' if d['tiny'] else ''}"


def table1_markdown(rows: Sequence[Mapping]) -> str:
    paper = [d for d in rows if d["section"] == "paper"]
    other = [d for d in rows if d["section"] == "other"]
    lines = ["## Table 1: inference latency of one forward pass, GPT-2 medium (ms)", "",
             f"Paper: {PAPER_SETUP}. Ours: results/bench/*.jsonl, full-size GPT-2 medium only; each of our numbers "
             "names its device, precision, trials and run. Overhead: vs the base model's forward (ft = a fine-tuned "
             "model = LoRA merged into W) at the same batch/seq, ours within one run. "
             f"{MISSING}: not measured.", "",
             "| Batch | Seq | Θ adapter (paper / ours) | Method | ours ms | paper ms | Δ ms | overhead ours / paper "
             "| ours measured on |",
             "|---|---|---|---|---|---|---|---|---|"]
    for d in paper:
        theta = f"{d['paper_theta']} / {fmt_params(d['ours_theta']) if d['ours_theta'] else MISSING}"
        ov = ("" if d["method"] == "Fine-Tune/LoRA"
              else f"{_pct(d['ours_overhead_pct'])} / {_pct(d['paper_overhead_pct'])}")
        delta = "" if d["delta_ms"] is None else f"{d['delta_ms']:+.1f}"
        ours_method = f" ({d['ours_method']})" if d["ours_method"] else ""
        lines.append(f"| {d['batch']} | {d['seq']} | {theta} | {d['method']}{ours_method} | {_ours_ms(d)} | "
                     f"{fmt(d['paper_ms'])} ± {fmt(d['paper_pm'])} | {delta} | {ov} | {d['measured_on']} |")
    if other:
        lines += ["", "### Our other measurements (no paper row)", "",
                  "Lines no paper row uses: LoRA merged (same as ft) and unmerged, other shapes, and tiny models "
                  "(`bench latency --tiny`: shrunk shapes, never comparable with the paper).", "",
                  "| Model | Batch | Seq | Method | adapter params | ours ms | overhead vs ft (same run) "
                  "| measured on |",
                  "|---|---|---|---|---|---|---|---|"]
        for d in other:
            lines.append(f"| {_model_label(d)} | {d['batch']} | {d['seq']} | {d['method']} | "
                         f"{fmt_params(d['ours_theta']) if d['ours_theta'] else MISSING} | {_ours_ms(d)} | "
                         f"{_pct(d['ours_overhead_pct'])} | {d['measured_on']} |")
    return "\n".join(lines) + "\n"


def _tex(s: str) -> str:
    return tex_escape(s).replace("±", "$\\pm$").replace("Θ", "$\\Theta$")


def table1_latex(rows: Sequence[Mapping]) -> str:
    lines = ["% Table 1: GPT-2 medium forward latency (ms). Generated by lora-repro tables from results/bench.",
             "\\begin{tabular}{llrrllccc}", "\\toprule",
             "Model & Device & Batch & Seq & $|\\Theta|$ & Method & ours & paper & overhead ours / paper \\\\",
             "\\midrule"]
    for d in rows:
        model = _model_label(d) if d["ours_model"] else MISSING
        device = ", ".join(str(d[k]) for k in ("device", "precision") if d.get(k)) or MISSING
        theta = d["paper_theta"] or (fmt_params(d["ours_theta"]) if d["ours_theta"] else MISSING)
        paper = f"{fmt(d['paper_ms'])} ± {fmt(d['paper_pm'])}" if d["section"] == "paper" else MISSING
        ov = ("" if d["method"] == "Fine-Tune/LoRA" else
              f"{_pct(d['ours_overhead_pct'])} / {_pct(d['paper_overhead_pct'])}" if d["section"] == "paper"
              else _pct(d["ours_overhead_pct"]))
        cells = [model, device, str(d["batch"]), str(d["seq"]), theta, str(d["method"]), _ours_ms(d), paper, ov]
        lines.append(" & ".join(_tex(c) for c in cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def table1_csv(rows: Sequence[Mapping]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TABLE1_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows({k: ("" if d.get(k) is None else d.get(k)) for k in TABLE1_FIELDS} for d in rows)
    return buf.getvalue()


def write_table1(bench: str | Path, out_dir: str | Path, err=None) -> Path:
    """Write table1.{md,tex,csv} in ``out_dir`` from every latency line under ``bench``; problems with
    lines go to ``err``. The only writer of Table 1 (`lora-repro tables` and `bench latency` call it)."""
    err = err or sys.stderr
    lines, problems = load_latency(bench)
    for p in problems:
        print(f"lora-repro tables: {p}", file=err)
    rows = build_table1(lines)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for ext, text in (("md", table1_markdown(rows)), ("tex", table1_latex(rows)), ("csv", table1_csv(rows))):
        write_text(out_dir / f"table1.{ext}", text)
    return out_dir / "table1.md"
