"""`lora-repro plan`: what a preset's sweep would launch, what is already done, and what it costs.

Each job of ``train.py -m +experiment=<preset>`` is composed with Hydra's compose API and given the
train app's run identity (``sweep.preset_jobs``); a job with a finished record is skipped by the app
(skip_existing), so it costs nothing. The GPU-hour estimate is a stated model, not a measurement:

    step seconds = max(batch x min(avg tokens, max_length) x PADDING / tokens_per_s, MIN_STEP_S[model])
    GPU-hours    = ceil(train examples / batch) x epochs x step seconds / 3600 x EVAL

- tokens_per_s (one H100) = EFFECTIVE_FLOPS / flops_per_token, flops_per_token = 6 N for full
  fine-tuning (forward 2N + backward 4N) and 4 N when the body is frozen (no weight gradients),
  N = model parameters, counted on the meta device from the model's config (`model_size`: conf/model/<name>
  built by `models.model_config`; a hub checkpoint is sized from its shipped config JSON);
  EFFECTIVE_FLOPS = 200 TFLOP/s for bf16/fp16 (~20% of the H100's 989 TFLOP/s dense peak), half that for
  fp32 (TF32). The precision priced is the one the run will use on the target GPU
  (`train.precision.resolve_precision` with TARGET_GPU_BF16: `auto` is bf16 on an H100). The bench part may
  replace TOKENS_PER_S_MEASURED with measured H100 figures; measured values win over the model.
- MIN_STEP_S[model] = MIN_STEP_S_PER_LAYER x the config's num_hidden_layers: a floor per optimiser step (eager
  PyTorch is kernel-launch bound at the paper's small batches: ~2.5 ms per layer forward+backward on an H100,
  our estimate), so tiny batches are not costed as if they ran at peak FLOPs.
- train examples: the task's hub train split size (`Task.train_examples`), capped by task.max_train_samples;
  a task with data_dir counts the rows of its train file (`Task.split_files`: jsonl, json, csv or parquet).
- avg tokens per example: the task's estimate of the tokenised length of one example (`Task.avg_tokens`, not
  measured); PADDING = 1.2 for dynamic padding within a batch; EVAL = 1.1 for classification, 1.5 for
  generation tasks (beam-search decoding of the eval set every epoch).
"""
from __future__ import annotations

import argparse
import math
import sys
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

from .. import records
from ..tasks import TASKS
from . import compose as sweep

MIN_STEP_S_PER_LAYER = 0.0025
EFFECTIVE_FLOPS = {"bf16": 200e12, "fp16": 200e12, "fp32": 100e12}
FULL_BODY_METHODS = {"ft"}
PADDING = 1.2
TARGET_GPU_BF16 = True   # the H100 the estimate is for computes bf16 natively
TOKENS_PER_S_MEASURED: dict[tuple[str, str], float] = {}  # (model, method) -> measured H100 train tokens/s
_SIZES: dict[str, tuple[int, int]] = {}   # model name -> (parameters, layers), see model_size


def model_spec(model: Mapping | str, config_dir: str | Path | None = None) -> dict:
    """The model group of a run config; a bare name (or `{"name": ...}`) reads conf/model/<name>.yaml."""
    name = model if isinstance(model, str) else model["name"]
    if isinstance(model, Mapping) and ("pretrained" in model or "arch_config" in model):
        return dict(model)
    conf = Path(config_dir or sweep.DEFAULT_CONFIG_DIR) / "model"
    path = conf / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in conf.glob("*.yaml"))
        raise KeyError(f"no model config for {name!r} in {str(conf)!r}; known: {known}")
    from omegaconf import OmegaConf
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def model_size(model: Mapping | str) -> tuple[int, int]:
    """(parameters, layers) of a run config's model, counted on the meta device; cached per model name.
    KeyError when the model has no config, ModelConfigError/OSError when it cannot be built offline."""
    name = model if isinstance(model, str) else model["name"]
    if name not in _SIZES:
        from ..models import meta_model, model_config

        config = model_config(model_spec(model), shipped=True)   # a paper model: its shipped config
        _SIZES[name] = (sum(p.numel() for p in meta_model(config).parameters()), config.num_hidden_layers)
    return _SIZES[name]


def min_step_s(model: Mapping | str) -> float:
    return MIN_STEP_S_PER_LAYER * model_size(model)[1]


def tokens_per_s(model: Mapping | str, method: str, precision: str = "bf16") -> float:
    """Training tokens/s on one H100: a measured figure when the bench part has one, else the FLOP model."""
    name = model if isinstance(model, str) else model["name"]
    if (name, method) in TOKENS_PER_S_MEASURED:
        return TOKENS_PER_S_MEASURED[(name, method)]
    per_token = (6 if method in FULL_BODY_METHODS else 4) * model_size(model)[0]
    return EFFECTIVE_FLOPS.get(precision, EFFECTIVE_FLOPS["fp32"]) / per_token


def count_rows(path: str | Path) -> int:
    """Rows of one data file in a format `Task.load` reads (jsonl, json lines or a json list, csv, parquet)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        return pq.ParquetFile(path).metadata.num_rows
    if path.suffix == ".csv":
        import csv
        with path.open(newline="", encoding="utf-8") as f:
            return max(sum(1 for _ in csv.reader(f)) - 1, 0)   # less the header; quoted newlines stay in their row
    if path.suffix == ".json":
        import json
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, list):
                return len(data)
        except ValueError:
            pass                                                # JSON lines under a .json name
    with path.open(encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def train_examples(task_cfg: Mapping) -> int | None:
    """Rows the run trains on: its data_dir's train file, else the task's hub train split; capped."""
    cls = TASKS.get(task_cfg.get("name"))
    if cls is None:
        return None
    n = cls.train_examples
    data_dir = task_cfg.get("data_dir")
    if data_dir:
        train_file = cls().split_files(data_dir)[cls.train_split]
        n = count_rows(train_file) if train_file is not None else None
    cap = task_cfg.get("max_train_samples")
    return min(n, cap) if n is not None and cap else n


def target_precision(trainer: Mapping) -> str:
    """The precision the run will train in on the target GPU (what `auto`, the default, resolves to there)."""
    from ..train.precision import resolve_precision
    return resolve_precision(trainer.get("precision") or "auto", bf16=TARGET_GPU_BF16)


def _known_size(model: Mapping) -> bool:
    from ..models import ModelConfigError
    try:
        model_size(model)
    except (KeyError, ModelConfigError, OSError):
        return False
    return True


def gpu_hours(config: Mapping) -> float | None:
    """Estimated H100 hours of one job (None when its task lacks planning facts or its model cannot be sized)."""
    task, trainer, model, method = config["task"], config["trainer"], config["model"], config["method"]["name"]
    cls, n = TASKS.get(task["name"]), train_examples(task)
    if cls is None or n is None or cls.avg_tokens is None:
        return None
    measured = (model["name"], method) in TOKENS_PER_S_MEASURED
    if not measured and not _known_size(model):
        return None
    batch = trainer["batch_size"] * trainer.get("grad_accum", 1)
    step_tokens = batch * min(cls.avg_tokens, task["max_length"]) * PADDING
    floor = min_step_s(model) if _known_size(model) else 0.0
    step_s = max(step_tokens / tokens_per_s(model, method, target_precision(trainer)),
                 floor * trainer.get("grad_accum", 1))
    seconds = math.ceil(n / batch) * trainer["epochs"] * step_s
    return seconds / 3600 * (1.5 if cls.kind == "generation" else 1.1)


def global_batch(trainer: Mapping) -> int:
    """The batch one optimizer step sees on one process: batch_size x grad_accum (what the estimate prices)."""
    return int(trainer["batch_size"]) * int(trainer.get("grad_accum") or 1)


def summarize(jobs: Sequence[sweep.Job]) -> list[dict]:
    """One line per (model, method, task): jobs, finished, todo, GPU-hours of the todo jobs."""
    groups: OrderedDict[tuple, dict] = OrderedDict()
    for job in jobs:
        c = job.config
        key = (c["model"]["name"], c["method"]["name"], c["task"]["name"])
        g = groups.setdefault(key, dict(model=key[0], method=key[1], task=key[2], jobs=0, finished=0, failed=0,
                                        gpu_h=0.0, unknown=0, batches=set()))
        g["jobs"] += 1
        g["batches"].add(global_batch(c["trainer"]))
        status = job.status
        if status == records.STATUS_FINISHED:
            g["finished"] += 1
            continue
        g["failed"] += status == records.STATUS_FAILED
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
    print(f"  {'model':<20} {'method':<13} {'task':<11} {'batch':>6} {'runs':>5} {'done':>5} {'failed':>6} "
          f"{'GPU-h':>9}", file=out)
    for g in lines:
        est = f"{g['gpu_h']:9.2f}" + ("  (+unknown)" if g["unknown"] else "")
        batch = "/".join(str(b) for b in sorted(g["batches"]))
        print(f"  {g['model']:<20} {g['method']:<13} {g['task']:<11} {batch:>6} {g['jobs']:>5} {g['finished']:>5} "
              f"{g['failed']:>6} {est}", file=out)
    if show_jobs:
        for job in jobs:
            label = {records.STATUS_FINISHED: "done", records.STATUS_FAILED: "FAIL"}.get(job.status, "todo")
            print(f"  [{label}] {job.run_id} "
                  f"{' '.join(job.overrides)}", file=out)
    return total_h


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lora-repro plan", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", action="append", required=True,
                   help="a preset in conf/experiment/ (repeatable: stages run in the order given)")
    p.add_argument("--config-dir", default=None, help=f"Hydra config dir (default: {sweep.DEFAULT_CONFIG_DIR})")
    p.add_argument("--optional", action="append", default=[],
                   help="a preset that is not part of this target but can be run on its own (e.g. the re-runs of "
                        "the rows the paper copied): counted and priced on a line of its own, not in the total")
    p.add_argument("--jobs", action="store_true", help="list every run with its overrides and done/todo")
    p.add_argument("overrides", nargs="*", help="extra overrides, as given to experiments/train.py -m")
    args = p.parse_args(argv)
    from ..train.progress import cli_logging
    cli_logging()   # progress of composing the jobs where no bar is drawn
    stages, optional = [], []
    for experiment in [*args.experiment, *args.optional]:
        try:
            jobs = sweep.preset_jobs(experiment, args.overrides, args.config_dir)
        except sweep.SweepError as e:
            print(f"lora-repro plan: {e}", file=sys.stderr)
            return 2
        (stages if experiment in args.experiment else optional).append((experiment, jobs))
    models = {job.config["model"]["name"]: job.config["model"] for _, jobs in stages for job in jobs}
    assumptions = ", ".join(f"{name}: {tokens_per_s(m, 'lora', 'bf16') / 1e3:,.0f}k ({model_size(m)[0] / 1e6:,.0f}M "
                            "params)" for name, m in models.items() if _known_size(m))
    print(f"assumed H100 training tokens/s (bf16, frozen body; x2/3 for ft, /2 for fp32): {assumptions}")
    total = 0.0
    for experiment, jobs in stages:
        total += report(experiment, jobs, args.jobs)
    if len(args.experiment) > 1:
        print(f"total: ~{total:,.1f} H100 GPU-hours to go")
    if optional:
        n_main = sum(len(jobs) for _, jobs in stages)
        n_opt = sum(len(jobs) for _, jobs in optional)
        opt_h = sum(g["gpu_h"] for _, jobs in optional for g in summarize(jobs))
        print(f"this target: {n_main} runs ({' + '.join(f'{len(j)} {e}' for e, j in stages)}); optional, not run by "
              f"it: {n_opt} runs ({' + '.join(f'{len(j)} {e}' for e, j in optional)}), ~{opt_h:,.1f} H100 GPU-hours")
    return 0


if __name__ == "__main__":
    sys.exit(main())
