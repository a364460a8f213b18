"""`lora-repro plan`: what a preset's sweep would launch, what is already done, and what it costs.

Each job of ``train.py -m +experiment=<preset>`` is composed with Hydra's compose API and given the
train app's run identity (``sweep.preset_jobs``); a job with a finished record is skipped by the app
(skip_existing), so it costs nothing. The GPU-hour estimate is a stated model, not a measurement:

    step seconds = max(batch x min(avg tokens, max_length) x PADDING / tokens_per_s, MIN_STEP_S[model])
    GPU-hours    = ceil(train examples / batch) x epochs x step seconds / 3600 x EVAL

- tokens_per_s (one H100) = EFFECTIVE_FLOPS / flops_per_token, flops_per_token = 6 N for full
  fine-tuning (forward 2N + backward 4N) and 4 N when the body is frozen (no weight gradients),
  N = model parameters (PARAMS); EFFECTIVE_FLOPS = 200 TFLOP/s for bf16/fp16 (~20% of the H100's
  989 TFLOP/s dense peak), half that for fp32 (TF32). The precision priced is the one the run will use on the
  target GPU (`train.precision.resolve_precision` with TARGET_GPU_BF16: `auto` is bf16 on an H100). The bench part may replace TOKENS_PER_S_MEASURED
  with measured H100 figures; measured values win over the model.
- MIN_STEP_S: a floor per optimiser step (eager PyTorch is kernel-launch bound at the paper's small
  batches: ~2.5 ms per layer forward+backward on an H100, our estimate), so tiny batches are not costed
  as if they ran at peak FLOPs.
- train examples: the hub train split sizes (TRAIN_EXAMPLES), capped by task.max_train_samples; a
  task with data_dir counts the lines of its train file.
- avg tokens per example: our estimates of the tokenised length of one example (AVG_TOKENS, not measured);
  PADDING = 1.2 for dynamic padding within a batch; EVAL = 1.1 for classification, 1.5 for generation
  tasks (beam-search decoding of the eval set every epoch).
"""
from __future__ import annotations

import argparse
import math
import sys
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import compose as sweep

TRAIN_EXAMPLES = {
    "glue/mnli": 392_702, "glue/sst2": 67_349, "glue/mrpc": 3_668, "glue/cola": 8_551, "glue/qnli": 104_743,
    "glue/qqp": 363_846, "glue/rte": 2_490, "glue/stsb": 5_749, "gpt2/mnli": 392_702,
    "e2e": 42_061, "wikisql": 56_355, "samsum": 14_732,
}
AVG_TOKENS = {  # estimates: tokenised example length incl. special tokens (and the target for generation tasks)
    "glue/mnli": 40, "glue/sst2": 13, "glue/mrpc": 53, "glue/cola": 11, "glue/qnli": 50, "glue/qqp": 30,
    "glue/rte": 70, "glue/stsb": 31, "gpt2/mnli": 50, "e2e": 60, "wikisql": 180, "samsum": 160,
}
PARAMS = {
    "roberta-base": 125e6, "roberta-large": 355e6, "deberta-v2-xxlarge": 1.5e9, "gpt2-medium": 355e6,
    "gpt2-large": 774e6, "minilm": 22.7e6, "tiny-roberta": 1e6, "tiny-gpt2": 1e6, "tiny-deberta": 1e6,
}
LAYERS = {"roberta-base": 12, "roberta-large": 24, "deberta-v2-xxlarge": 48, "gpt2-medium": 24, "gpt2-large": 36,
          "minilm": 6, "tiny-roberta": 2, "tiny-gpt2": 2, "tiny-deberta": 2}
MIN_STEP_S = {m: 0.0025 * n for m, n in LAYERS.items()}
EFFECTIVE_FLOPS = {"bf16": 200e12, "fp16": 200e12, "fp32": 100e12}
GENERATION_TASKS = {"e2e", "wikisql", "samsum", "gpt2/mnli"}
FULL_BODY_METHODS = {"ft"}
PADDING = 1.2
TARGET_GPU_BF16 = True   # the H100 the estimate is for computes bf16 natively
TOKENS_PER_S_MEASURED: dict[tuple[str, str], float] = {}  # (model, method) -> measured H100 train tokens/s


def tokens_per_s(model: str, method: str, precision: str = "bf16") -> float:
    """Training tokens/s on one H100: a measured figure when the bench part has one, else the FLOP model."""
    if (model, method) in TOKENS_PER_S_MEASURED:
        return TOKENS_PER_S_MEASURED[(model, method)]
    if model not in PARAMS:
        raise KeyError(f"no parameter count for model {model!r}; known: {sorted(PARAMS)}")
    per_token = (6 if method in FULL_BODY_METHODS else 4) * PARAMS[model]
    return EFFECTIVE_FLOPS.get(precision, EFFECTIVE_FLOPS["fp32"]) / per_token


def train_examples(task_cfg: Mapping) -> int | None:
    name = task_cfg.get("name")
    n = None
    data_dir = task_cfg.get("data_dir")
    if data_dir:
        files = sorted(Path(data_dir).glob("train.*"))
        if files and files[0].suffix == ".jsonl":
            n = sum(1 for line in files[0].open() if line.strip())
    if n is None:
        n = TRAIN_EXAMPLES.get(name)
    cap = task_cfg.get("max_train_samples")
    return min(n, cap) if n is not None and cap else n


def target_precision(trainer: Mapping) -> str:
    """The precision the run will train in on the target GPU (what `auto`, the default, resolves to there)."""
    from ..train.precision import resolve_precision
    return resolve_precision(trainer.get("precision") or "auto", bf16=TARGET_GPU_BF16)


def gpu_hours(config: Mapping) -> float | None:
    """Estimated H100 hours of one job (None when its task or model is not in the tables)."""
    task, trainer = config["task"], config["trainer"]
    model, method = config["model"]["name"], config["method"]["name"]
    n, avg = train_examples(task), AVG_TOKENS.get(task["name"])
    if n is None or avg is None or model not in PARAMS and (model, method) not in TOKENS_PER_S_MEASURED:
        return None
    batch = trainer["batch_size"] * trainer.get("grad_accum", 1)
    step_tokens = batch * min(avg, task["max_length"]) * PADDING
    step_s = max(step_tokens / tokens_per_s(model, method, target_precision(trainer)),
                 MIN_STEP_S.get(model, 0.0) * trainer.get("grad_accum", 1))
    seconds = math.ceil(n / batch) * trainer["epochs"] * step_s
    return seconds / 3600 * (1.5 if task["name"] in GENERATION_TASKS else 1.1)


def summarize(jobs: Sequence[sweep.Job]) -> list[dict]:
    """One line per (model, method, task): jobs, finished, todo, GPU-hours of the todo jobs."""
    groups: OrderedDict[tuple, dict] = OrderedDict()
    for job in jobs:
        c = job.config
        key = (c["model"]["name"], c["method"]["name"], c["task"]["name"])
        g = groups.setdefault(key, dict(model=key[0], method=key[1], task=key[2], jobs=0, finished=0, failed=0,
                                        gpu_h=0.0, unknown=0))
        g["jobs"] += 1
        status = job.status
        if status == "finished":
            g["finished"] += 1
            continue
        g["failed"] += status == "failed"
        h = gpu_hours(c)
        if h is None:
            g["unknown"] += 1
        else:
            g["gpu_h"] += h
    return list(groups.values())


def report(experiment: str, jobs: Sequence[sweep.Job], show_jobs: bool = False, out=None) -> float:
    out = out or sys.stdout
    lines = summarize(jobs)
    done = sum(g["finished"] for g in lines)
    failed = sum(g["failed"] for g in lines)
    total_h = sum(g["gpu_h"] for g in lines)
    print(f"+experiment={experiment}: {len(jobs)} runs, {done} already finished, {len(jobs) - done} to launch "
          f"({failed} of them failed before), ~{total_h:,.1f} H100 GPU-hours to go (estimate; see "
          "`lora-repro plan --help`)", file=out)
    print(f"  {'model':<20} {'method':<13} {'task':<11} {'runs':>5} {'done':>5} {'failed':>6} {'GPU-h':>9}", file=out)
    for g in lines:
        est = f"{g['gpu_h']:9.2f}" + ("  (+unknown)" if g["unknown"] else "")
        print(f"  {g['model']:<20} {g['method']:<13} {g['task']:<11} {g['jobs']:>5} {g['finished']:>5} "
              f"{g['failed']:>6} {est}", file=out)
    if show_jobs:
        for job in jobs:
            print(f"  [{ {'finished': 'done', 'failed': 'FAIL'}.get(job.status, 'todo') }] {job.run_id} "
                  f"{' '.join(job.overrides)}", file=out)
    return total_h


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lora-repro plan", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", action="append", required=True,
                   help="a preset in conf/experiment/ (repeatable: stages run in the order given)")
    p.add_argument("--config-dir", default=None, help=f"Hydra config dir (default: {sweep.DEFAULT_CONFIG_DIR})")
    p.add_argument("--jobs", action="store_true", help="list every run with its overrides and done/todo")
    p.add_argument("overrides", nargs="*", help="extra overrides, as given to experiments/train.py -m")
    args = p.parse_args(argv)
    assumptions = ", ".join(f"{m}: {tokens_per_s(m, 'lora', 'bf16') / 1e3:,.0f}k" for m in PARAMS if "tiny" not in m)
    print(f"assumed H100 training tokens/s (bf16, frozen body; x2/3 for ft, /2 for fp32): {assumptions}")
    total = 0.0
    for experiment in args.experiment:
        try:
            jobs = sweep.preset_jobs(experiment, args.overrides, args.config_dir)
        except sweep.SweepError as e:
            print(f"lora-repro plan: {e}", file=sys.stderr)
            return 2
        total += report(experiment, jobs, args.jobs)
    if len(args.experiment) > 1:
        print(f"total: ~{total:,.1f} H100 GPU-hours to go")
    return 0


if __name__ == "__main__":
    sys.exit(main())
