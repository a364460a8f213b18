"""`lora-repro bench {train,latency,summary,costs}`: see the package docstring and README's Benchmarks section."""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

from ..report.table1 import write_table1
from ..train.precision import PRECISIONS, resolve_precision
from .latency import (
    LATENCY_METHODS,
    PAPER_SHAPES,
    SUCCESSOR_LATENCY,
    TINY_SHAPES,
    LatencySetting,
    measure_latency,
    runnable,
)
from .methods import TRAIN_METHODS, available, parse_method
from .models import MODELS, PRESETS, TINY_SHAPE
from .report import append_jsonl, environment, new_run_id, write_summary
from .throughput import table as throughput_table
from .train import FastPaths, TrainSetting, measure_train


def _device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda when available)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="default for train: what trainer.precision=auto takes on the device "
                        "(bf16 on a bf16 GPU, else fp32)")
    p.add_argument("--tiny", action="store_true", help="shrunk models and shapes: seconds on a CPU (not the paper's)")
    p.add_argument("--warmup", type=int, help="untimed steps/passes first")
    p.add_argument("--out", default="results/bench", help="directory of the JSON lines and summary.md")
    p.add_argument("--name", help="JSON lines file name (default: the subcommand)")
    p.add_argument("--seed", type=int, default=0)


def _train(args) -> int:
    device = _device(args.device)
    precision = args.precision or resolve_precision("auto", device)
    if args.preset:
        names = list(PRESETS) if args.preset == ["all"] else args.preset
        bad = [n for n in names if n not in PRESETS]
        if bad:
            raise SystemExit(f"unknown preset(s) {bad}; valid: {', '.join(PRESETS)}, all")
        shapes = [(PRESETS[n].model, PRESETS[n].batch, PRESETS[n].seq) for n in names]
    else:
        shapes = [(args.model, 8, 512)]
    if args.tiny:
        shapes = [(m, *TINY_SHAPE) for m, _, _ in shapes]
    shapes = [(m, args.batch or b, args.seq or s) for m, b, s in shapes]
    requested = args.methods or list(TRAIN_METHODS)
    try:
        specs = [parse_method(t) for t in requested]
    except ValueError as e:
        raise SystemExit(f"lora-repro bench train: {e}") from None
    runnable_names = set(available(s.name for s in specs))
    skipped = [s.label for s in specs if s.name not in runnable_names]
    if skipped:
        _log(f"skipping (not available in this checkout): {', '.join(skipped)}")
    specs = [s for s in specs if s.name in runnable_names]
    ablated = set() if args.ablate is None else set(args.ablate or ["lora"])
    fast = FastPaths(frozen_low_precision=not args.no_frozen_low_precision, optimizer=args.optimizer,
                     attention=args.attention, compile=args.compile)
    run_id, env = new_run_id(), environment(device)
    path = Path(args.out) / f"{args.name or 'train'}.jsonl"
    for model, batch, seq in shapes:
        setting = TrainSetting(model=model, batch=batch, seq=seq, precision=precision,
                               warmup=args.warmup if args.warmup is not None else (1 if args.tiny else 3),
                               steps=args.steps or (3 if args.tiny else 10), tiny=args.tiny, seed=args.seed)
        jobs = [(spec, ablation, paths) for spec in specs
                for ablation, paths in (fast.ablations(with_compile=device.type == "cuda")
                                        if spec.name in ablated else {"all_on": fast}).items()
                if not (ablation == "no_frozen_low_precision" and precision == "fp32")]  # nothing to switch off
        for repeat in range(args.repeat):  # methods interleaved: a slow spell of the machine hits them all
            for spec, ablation, paths in jobs:
                try:
                    row = measure_train(setting, spec, paths, device)
                except torch.OutOfMemoryError as e:
                    _log(f"{model} {spec.label} {ablation}: out of memory ({e})")
                    continue
                row.update(run_id=run_id, created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           ablation=ablation, repeat=repeat, **env)
                append_jsonl(path, row)
                _log(f"{model} {batch}x{seq} {precision} {spec.label:<12} {ablation:<24} "
                     f"{row['tokens_per_s']:>10,.0f} tok/s  {row['step_ms_median']:8.1f} ms  "
                     f"peak {row['peak_memory_bytes'] / 2**30:.2f} GiB ({row['peak_memory_kind']})")
    print(write_summary(args.out))
    return 0


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        bs, _, params = text.partition(":")
        b, s = bs.lower().split("x")
        return int(b), int(s), int(float(params)) if params else 0
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"shape {text!r} must be BATCHxSEQ:ADAPTER_PARAMS, e.g. 32x512:5e5") from e


def _latency(args) -> int:
    device = _device(args.device)
    shapes = args.shape or (TINY_SHAPES if args.tiny else PAPER_SHAPES)
    bad = [m for m in (args.methods or []) if m not in LATENCY_METHODS and m not in SUCCESSOR_LATENCY]
    if bad:
        raise SystemExit(f"unknown latency method(s) {bad}; valid: {', '.join(LATENCY_METHODS + SUCCESSOR_LATENCY)}")
    methods = runnable(args.methods or LATENCY_METHODS)
    skipped = sorted(set(args.methods or LATENCY_METHODS) - set(methods))
    if skipped:
        _log(f"skipping (not registered in this checkout): {', '.join(skipped)}")
    setting = LatencySetting(model=args.model, precision=args.precision or "fp32",
                             trials=args.trials or (10 if args.tiny else 100),
                             warmup=args.warmup if args.warmup is not None else (2 if args.tiny else 10),
                             tiny=args.tiny, seed=args.seed, attention=args.attention)
    run_id, env = new_run_id(), environment(device)
    path = Path(args.out) / f"{args.name or 'latency'}.jsonl"
    for batch, seq, params in shapes:
        for method in methods:
            row = measure_latency(setting, method, batch, seq, params, device)
            row.update(run_id=run_id, created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **env)
            append_jsonl(path, row)
            _log(f"{args.model} {batch}x{seq} {method:<14} {row['mean_ms']:9.2f} ± {row['std_ms']:.2f} ms")
    print(write_table1(args.out, args.tables))   # the one Table 1 writer, from every latency line in --out
    print(write_summary(args.out))
    return 0


def _summary(args) -> int:
    print(write_summary(args.out))
    return 0


def _costs(args) -> int:
    rows = throughput_table(args.out, precision=args.precision or "bf16")
    path = Path(args.out) / "throughput.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print("| model | method | batch x seq | tokens/s | source |\n| --- | --- | --- | ---: | --- |")
    for r in rows:
        print(f"| {r['model']} | {r['method']} | {r['batch']}x{r['seq']} | {r['tokens_per_s']:,} | {r['source']} |")
    print(path, file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lora-repro bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="tokens/s and peak memory of a training step, per method")
    _common(t)
    t.add_argument("--model", default="gpt2-medium", choices=MODELS)
    t.add_argument("--preset", nargs="+", help=f"one or more of {', '.join(PRESETS)} (model, batch, seq) or 'all'")
    t.add_argument("--batch", type=int)
    t.add_argument("--seq", type=int)
    t.add_argument("--steps", type=int, help="timed steps (median reported)")
    t.add_argument("--methods", nargs="+", help=f"methods, e.g. lora:r=8,alpha=16 (default: {' '.join(TRAIN_METHODS)})")
    t.add_argument("--repeat", type=int, default=1,
                   help="measure every method this many times, interleaved (the summary takes the median)")
    t.add_argument("--ablate", nargs="*", metavar="METHOD", default=None,
                   help="also these methods (default: lora) with each fast path switched off in turn "
                        "(and torch.compile on, on CUDA)")
    t.add_argument("--no-frozen-low-precision", action="store_true", help="keep frozen weights fp32 (classic AMP)")
    t.add_argument("--optimizer", default="auto", choices=("auto", "fused", "foreach", "loop"))
    t.add_argument("--attention", default="sdpa", choices=("sdpa", "eager"))
    t.add_argument("--compile", action="store_true", help="torch.compile the model")
    t.set_defaults(func=_train)

    la = sub.add_parser("latency", help="the paper's Table 1: forward latency, adapters vs LoRA")
    _common(la)
    la.add_argument("--model", default="gpt2-medium", choices=MODELS)
    la.add_argument("--trials", type=int, help="timed forward passes (default 100; 10 with --tiny)")
    la.add_argument("--shape", type=_parse_shape, action="append",
                    help="BATCHxSEQ:ADAPTER_PARAMS, repeatable "
                         "(default: Table 1's 32x512:5e5 16x256:1.1e7 1x128:1.1e7)")
    la.add_argument("--methods", nargs="+", help=f"subset of {', '.join(LATENCY_METHODS)}")
    la.add_argument("--attention", default="sdpa", choices=("sdpa", "eager"))
    la.add_argument("--tables", default="results/tables", help="where table1.md goes")
    la.set_defaults(func=_latency)

    s = sub.add_parser("summary", help="rewrite summary.md from the JSON lines")
    s.add_argument("--out", default="results/bench")
    s.set_defaults(func=_summary)

    c = sub.add_parser("costs", help="tokens/s per model and method for the cost model (measured or assumed)")
    c.add_argument("--out", default="results/bench")
    c.add_argument("--precision", choices=PRECISIONS)
    c.set_defaults(func=_costs)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
