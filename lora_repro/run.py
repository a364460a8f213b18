"""One run, end to end: resolved config -> validated run -> model + method + data -> `train.fit` -> record.

Everything that can be checked without compute is checked first (`validate`, which reports every
problem at once): the trainer values, the task, its data_dir and split files, max_length against the
model's positions, the method options against the model's architecture, built on the meta device from
its config alone (no weights). A run's identity is `records.run_identity` of the resolved config; a
finished record with that identity is skipped (`skip_existing=true`), so a re-launched sweep only runs
what is missing, and a stopped run resumes from `<results>/checkpoints/<run_id>/state/`.

What can go wrong after validation leaves a trace: any exception writes a failed record (error, last
step; for CUDA OOM the batch size and peak memory) that a re-launch replaces; a stop signal checkpoints
at the next step boundary (train/preempt.py); one process per run identity trains at a time (a flock
in its checkpoint dir), so concurrent sweeps sharing a results dir never train a run twice.
"""
from __future__ import annotations

import logging
import os
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import records

log = logging.getLogger("lora_repro.run")

# Keys that steer a run but never change its result (kept out of its identity).
RUN_CONTROL_KEYS = ("stop_after_steps",)


class RunConfigError(ValueError):
    """A bad run config: one line per problem, each naming the key, the value and what is allowed."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class Problems(list):
    """Every problem of a config, collected, so one attempt reports all of them."""

    def check(self, ok: bool, key: str, value: Any, allowed: str) -> bool:
        if not ok:
            self.append(f"{key}={value!r} is invalid; allowed: {allowed}")
        return ok

    def raise_any(self) -> None:
        if self:
            raise RunConfigError(list(self))


@dataclass
class ValidatedRun:
    config: dict          # the resolved config as plain data (what the record stores)
    run_id: str
    task: Any             # the Task instance
    method_cfg: dict      # {"name": ..., **every option}
    model_config: Any     # the architecture config (no weights)
    decoder: bool
    max_length: int


def plain_config(cfg: Any) -> dict:
    if isinstance(cfg, Mapping) and not hasattr(cfg, "_metadata"):
        return {k: plain_config(v) if isinstance(v, Mapping) else v for k, v in cfg.items()}
    from omegaconf import OmegaConf
    return OmegaConf.to_container(cfg, resolve=True)


def run_id_of(config: Mapping) -> str:
    return records.run_identity({k: v for k, v in config.items() if k not in RUN_CONTROL_KEYS})


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def world_size() -> int:
    """Processes of this run (torchrun's WORLD_SIZE; 1 without it)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _check_trainer(t: Mapping, p: Problems) -> None:
    p.check(_number(t.get("lr")) and t["lr"] > 0, "trainer.lr", t.get("lr"), "a number > 0")
    for key in ("epochs", "batch_size"):
        p.check(_positive_int(t.get(key)), f"trainer.{key}", t.get(key), "an integer > 0")
    for key in ("grad_accum", "eval_batch_size"):
        if t.get(key) is not None:
            p.check(_positive_int(t[key]), f"trainer.{key}", t[key], "an integer > 0")
    from .fastpath import TRAINER_PRECISIONS
    p.check(t.get("precision", "auto") in TRAINER_PRECISIONS, "trainer.precision", t.get("precision"),
            str(list(TRAINER_PRECISIONS)))
    wr = t.get("warmup_ratio", 0.0) or 0.0
    p.check(_number(wr) and 0 <= wr < 1, "trainer.warmup_ratio", wr, "a number in [0, 1)")
    ws = t.get("warmup_steps", 0) or 0
    p.check(isinstance(ws, int) and ws >= 0, "trainer.warmup_steps", ws, "an integer >= 0 (0: use warmup_ratio)")
    p.check(t.get("eval_epochs", "all") in ("all", "last"), "trainer.eval_epochs", t.get("eval_epochs"),
            "'all' (evaluate every epoch, keep the best) or 'last'")
    ls = t.get("label_smoothing", 0.0) or 0.0
    p.check(_number(ls) and 0 <= ls < 1, "trainer.label_smoothing", ls, "a number in [0, 1)")
    mg = t.get("max_grad_norm")
    p.check(mg is None or (_number(mg) and mg >= 0), "trainer.max_grad_norm", mg,
            "null/0 (no clipping) or a number > 0")
    wd = t.get("weight_decay", 0.0) or 0.0
    p.check(_number(wd) and wd >= 0, "trainer.weight_decay", wd, "a number >= 0")
    betas = t.get("adam_betas", [0.9, 0.999])
    p.check(isinstance(betas, (list, tuple)) and len(betas) == 2 and all(_number(b) and 0 <= b < 1 for b in betas),
            "trainer.adam_betas", betas, "two numbers in [0, 1)")
    for key in ("save_every_steps", "log_every_steps"):
        if t.get(key) is not None:
            p.check(isinstance(t[key], int) and t[key] >= 0, f"trainer.{key}", t[key], "an integer >= 0")
    _check_global_batch(t, p)


def _check_global_batch(t: Mapping, p: Problems) -> None:
    """trainer.batch_size is per process; an optional trainer.global_batch_size (the paper's batch) must
    equal batch_size x grad_accum x WORLD_SIZE, so a run on another number of GPUs cannot silently
    train with another effective batch."""
    g = t.get("global_batch_size")
    if g is None or not _positive_int(t.get("batch_size")):
        return
    if not p.check(_positive_int(g), "trainer.global_batch_size", g, "null or an integer > 0"):
        return
    accum = t.get("grad_accum") or 1
    world = world_size()
    if not _positive_int(accum) or t["batch_size"] * accum * world == g:
        return
    hint = (f"per process {g // world}, e.g. trainer.batch_size={g // world} trainer.grad_accum=1"
            if g % world == 0 else f"a multiple of WORLD_SIZE={world}")
    p.append(f"trainer.global_batch_size={g} is not trainer.batch_size={t['batch_size']} x "
             f"trainer.grad_accum={accum} x WORLD_SIZE={world} = {t['batch_size'] * accum * world}; "
             f"allowed: {hint}")


def meta_model(model_config, task, decoder: bool):
    """The architecture with no storage: enough for a method's `validate` (module names and shapes)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    config = type(model_config).from_dict(model_config.to_dict())
    with torch.device("meta"):
        if decoder:
            return AutoModelForCausalLM.from_config(config)
        config.num_labels = task.num_labels
        return AutoModelForSequenceClassification.from_config(config)


def validate(cfg: Any) -> ValidatedRun:
    """Check a resolved config before any compute; raise RunConfigError listing every problem found
    (checks that need a valid task or model are skipped when those are already wrong)."""
    from .methods import MethodConfigError, resolve_config
    from .methods.arch import UnsupportedModelError, get_arch
    from .models import ModelConfigError, is_decoder_only, max_positions, model_config
    from .tasks import TaskConfigError, get_task
    from .tasks.base import LOCAL_FORMATS

    config = plain_config(cfg)
    p = Problems()
    for key in ("model", "task", "method", "trainer"):
        p.check(isinstance(config.get(key), Mapping), key, config.get(key), "a config group (see conf/)")
    p.raise_any()
    p.check(isinstance(config.get("seed"), int), "seed", config.get("seed"), "an integer")
    _check_trainer(config["trainer"], p)
    t = config["task"]
    try:
        task = get_task(t.get("name"))
    except TaskConfigError as e:
        p.append(f"task.name: {e}")
        task = None
    data_dir = t.get("data_dir")
    if task is not None and data_dir is not None:
        splits = (task.train_split, *task.eval_splits)
        allowed = (f"an existing directory with {'/'.join(splits)} files in the hub schema "
                   "(or null to download from the hub)")
        if p.check(Path(data_dir).is_dir(), "task.data_dir", data_dir, allowed):
            missing = [s for s in splits if not any(f.suffix in LOCAL_FORMATS for f in Path(data_dir).glob(f"{s}.*"))]
            exts = ",".join(LOCAL_FORMATS)
            p.check(not missing, "task.data_dir", data_dir,
                    "a directory holding a file per split; missing: " + ", ".join(f"{m}{{{exts}}}" for m in missing))
    p.check(_positive_int(t.get("max_length")), "task.max_length", t.get("max_length"), "an integer > 0")
    for key in ("max_train_samples", "max_eval_samples"):
        if t.get(key) is not None:
            p.check(_positive_int(t[key]), f"task.{key}", t[key], "null or an integer > 0")
    mconf = None
    try:
        mconf = model_config(config["model"])
    except ModelConfigError as e:
        p.append(str(e))
    except OSError as e:  # a hub id without network / cache, or a local dir without config.json
        p.append(f"model.pretrained={config['model'].get('pretrained')!r}: cannot load its config "
                 f"(no network and not in the Hugging Face cache, or not a checkpoint dir): {e}")
    try:
        method_cls, options = resolve_config(config["method"])
    except MethodConfigError as e:
        p.append(f"method: {e}")
        method_cls = None
    if mconf is None or task is None:
        p.raise_any()
        raise AssertionError("unreachable: a missing model or task is always a problem")
    decoder = is_decoder_only(mconf)
    model_name = config["model"].get("name")
    if not decoder and task.kind not in ("classification", "regression"):
        p.append(f"task={task.name!r} is a {task.kind} task: it needs a decoder-only model "
                 f"(e.g. model=gpt2-medium), not model={model_name!r}")
    if decoder and task.kind != "generation":
        p.append(f"task={task.name!r} is a {task.kind} task: it needs an encoder model "
                 f"(e.g. model=roberta-base), not the decoder-only model={model_name!r}; "
                 "GPT-2 takes generation tasks (e2e, wikisql, samsum, gpt2/mnli)")
    limit = max_positions(mconf)
    if limit and _positive_int(t.get("max_length")):
        p.check(t["max_length"] <= limit, "task.max_length", t["max_length"],
                f"at most {limit}, the positions model={model_name!r} has")
    if method_cls is not None:
        try:
            model = meta_model(mconf, task, decoder)
            get_arch(model)
            method_cls().validate(model, options)
        except (MethodConfigError, UnsupportedModelError) as e:
            p.append(f"method: {e}")
    init_from = config.get("method_init_from")
    if init_from is not None:
        p.check(Path(init_from, "adapter.safetensors").is_file(), "method_init_from", init_from,
                "an adapter directory holding adapter.safetensors (e.g. <results>/checkpoints/<run_id>/adapter)")
    p.raise_any()
    return ValidatedRun(config=config, run_id=run_id_of(config), task=task,
                        method_cfg={"name": method_cls.name, **options}, model_config=mconf, decoder=decoder,
                        max_length=t["max_length"])


# --- pieces of a run ------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def init_from_adapter(model, directory: str | os.PathLike) -> list[str]:
    """Start from another run's adapter (the paper starts MRPC/RTE/STS-B LoRA from MNLI's): load its
    body tensors only, never the task head; every tensor must fit this model."""
    from safetensors.torch import load_file

    from .methods.arch import is_head_param

    tensors = {k: v for k, v in load_file(str(Path(directory) / "adapter.safetensors")).items()
               if not is_head_param(model, k)}
    params = dict(model.named_parameters())
    bad = [k for k, v in tensors.items() if k not in params or params[k].shape != v.shape]
    if bad:
        raise RunConfigError(f"method_init_from={str(directory)!r}: tensors that do not fit this model: {bad[:5]}")
    model.load_state_dict(tensors, strict=False)
    return sorted(tensors)


def load_data(task, tcfg: Mapping):
    data = task.load(tcfg.get("data_dir"))
    for split, limit in [(task.train_split, tcfg.get("max_train_samples"))] + \
                        [(s, tcfg.get("max_eval_samples")) for s in task.eval_splits]:
        if limit is not None and len(data[split]) > limit:
            data[split] = data[split].select(range(limit))
    return data


def make_record(v: ValidatedRun, report, result, status: str, adapter_dir: Path | None, error: str | None = None,
                **extra):
    m = v.method_cfg
    rec = {
        "run_id": v.run_id, "created_at": records.now_iso(), "git_sha": records.git_sha(),
        "model": v.config["model"].get("name"), "task": v.task.name, "method": m["name"],
        "r": m.get("r"), "alpha": m.get("alpha"), "targets": m.get("targets"), "seed": v.config["seed"],
        "trainable_params": report.params.trainable_paper if report else None,
        "trainable_params_with_head": report.params.trainable if report else None,
        "total_params": report.params.total if report else None,
        "metrics": result.metrics if result else {}, "main_metric": v.task.main_metric,
        "peak_vram_bytes": result.peak_memory_bytes if result else None,
        "peak_memory_kind": result.peak_memory_kind if result else None,
        "tokens_per_s": result.tokens_per_s if result else None,
        "train_wall_s": result.train_wall_s if result else None,
        "status": status, "config": v.config, "method_config": m,
        "history": result.history if result else [], "steps": result.steps if result else None,
        "precision": result.extra.get("precision") if result else None,   # what `auto` resolved to
    }
    if adapter_dir is not None:
        rec["adapter_dir"] = str(adapter_dir)
    if error is not None:
        rec["error"] = error
    rec.update(extra)
    return rec


def failure_record(v: ValidatedRun, report, error: BaseException, device=None) -> dict:
    """What a failed run leaves: the error, the last completed step, and for an out-of-memory error the
    batch size and the peak memory reached (so the fix is obvious from the record alone)."""
    import torch

    from .train.measure import peak_memory

    t = v.config["trainer"]
    message = f"{type(error).__name__}: {error}"
    extra = {"last_step": getattr(error, "last_step", None)}
    peak, kind = peak_memory(device or torch.device("cpu"))
    if isinstance(error, torch.cuda.OutOfMemoryError):
        extra.update(batch_size=t.get("batch_size"), grad_accum=t.get("grad_accum") or 1,
                     max_length=v.max_length)
        message = (f"out of memory at trainer.batch_size={t.get('batch_size')} (grad_accum={extra['grad_accum']}, "
                   f"max_length={v.max_length}), peak {peak / 2**30:.2f} GiB ({kind}): lower trainer.batch_size and "
                   f"raise trainer.grad_accum to keep the global batch. {message.splitlines()[0]}")
    rec = make_record(v, report, None, records.STATUS_FAILED, None, error=message, **extra)
    rec.update(peak_vram_bytes=peak, peak_memory_kind=kind)
    return rec


@dataclass
class Outcome:
    """How one run ended, for callers that need more than the record (a sweep's summary)."""
    status: str                   # "done" | "skipped" | "stopped" (resume to finish) | "failed"
    run_id: str | None = None
    record: dict | None = None
    record_path: str | None = None
    error: str | None = None


def run(cfg: Any) -> dict | None:
    """Run one config to a record; returns the record (None when stopped early: resume to finish).
    A failure writes a failed record and re-raises; a stop signal checkpoints and exits (preempt.py)."""
    return execute(cfg).record


def execute(cfg: Any) -> Outcome:
    v = validate(cfg)
    from .train.preempt import deferred_stop_signals

    with deferred_stop_signals() as stop:
        try:
            return _execute(v, stop)
        finally:
            stop.deliver()  # a signal that came after the last step boundary (or during a failure): honour it


def _execute(v: ValidatedRun, stop) -> Outcome:
    """One process per run identity at a time (a lock in its checkpoint dir, held by rank 0): two sweeps
    sharing a results dir never train the same run twice or write its state and adapter at once."""
    results_dir = v.config.get("results_dir") or "results"
    if (skipped := _skip(v, results_dir)) is not None:
        return skipped
    if int(os.environ.get("RANK", "0")) != 0:
        return _execute_locked(v, stop, results_dir)
    lock = Path(results_dir) / "checkpoints" / v.run_id / "run.lock"
    try:
        with records.file_lock(lock, blocking=False):
            return _skip(v, results_dir) or _execute_locked(v, stop, results_dir)
    except records.LockBusy:
        log.warning("run %s is running in another process (%s holds its lock): not starting it twice",
                    v.run_id, lock)
        return Outcome("skipped", v.run_id, None, str(records.record_path(results_dir, v.run_id)),
                       error="running in another process")


def _skip(v: ValidatedRun, results_dir) -> Outcome | None:
    path = str(records.record_path(results_dir, v.run_id))
    if v.config.get("skip_existing", True):
        done = records.finished_record(results_dir, v.run_id)
        if done is not None:
            log.warning("skipping run %s: finished record %s exists", v.run_id, path)
            return Outcome("skipped", v.run_id, done, path)
    return None


def _execute_locked(v: ValidatedRun, stop, results_dir) -> Outcome:
    path = str(records.record_path(results_dir, v.run_id))
    from .train import dist as dist_mod

    dist = dist_mod.setup()
    made: dict = {}     # what _train built so far (the method report, the W&B run), for a failure record
    try:
        result = _train(v, dist, results_dir, stop, made)
    except Exception as e:
        wb = made.get("wandb")
        if dist.main:
            rec = failure_record(v, made.get("report"), e, dist.device)
            records.write_record(rec, results_dir)
            log.error("run %s failed at step %s: %s; failure record %s", v.run_id, rec["last_step"], rec["error"],
                      path)
            if wb:
                wb.finish_with(rec)
        raise
    finally:
        dist_mod.teardown()
    report, wb, adapter_dir = made["report"], made["wandb"], made["adapter_dir"]
    if result.interrupted:
        why = "a stop signal" if result.stop_reason == "signal" else "stop_after_steps"
        log.warning("run %s stopped after %d steps (%s); state saved in %s: re-run the same command to resume",
                    v.run_id, result.steps, why, Path(results_dir) / "checkpoints" / v.run_id / "state")
        if wb:
            wb.run.finish(exit_code=0)
        return Outcome("stopped", v.run_id)
    if not dist.main:
        return Outcome("done", v.run_id)
    rec = make_record(v, report, result, records.STATUS_FINISHED, adapter_dir if adapter_dir.exists() else None)
    records.write_record(rec, results_dir)
    if wb:
        wb.finish_with(rec)
    shutil.rmtree(Path(results_dir) / "checkpoints" / v.run_id / "state", ignore_errors=True)  # only the adapter stays
    log.info("run %s finished: %s=%s (best epoch %s); record %s", v.run_id, v.task.main_metric,
             rec["metrics"].get(v.task.main_metric), result.best_epoch, path)
    return Outcome("done", v.run_id, rec, path)


def _train(v: ValidatedRun, dist, results_dir, stop, made: dict):
    """Model + method + data -> fit; `made` collects the method report, the W&B run and the adapter dir."""
    from .methods import apply_method
    from .models import load_model
    from .train import fit

    config = v.config
    run_dir = Path(results_dir) / "checkpoints" / v.run_id
    adapter_dir = made["adapter_dir"] = run_dir / "adapter"
    seed_everything(config["seed"])
    model, tokenizer = load_model(config["model"], v.task)
    report = made["report"] = apply_method(model, v.method_cfg)
    if config.get("method_init_from"):
        loaded = init_from_adapter(model, config["method_init_from"])
        log.info("initialised %d tensors from %s", len(loaded), config["method_init_from"])
    log.info("run %s: %s on %s with %s: %s trainable (paper count) of %s", v.run_id, config["model"].get("name"),
             v.task.name, v.method_cfg["name"], f"{report.params.trainable_paper:,}", f"{report.params.total:,}")
    data = load_data(v.task, config["task"])

    from . import logging_wandb
    wb = made["wandb"] = logging_wandb.start(config.get("logger"), config, v.run_id, results_dir) if dist.main else None
    base_name = config["model"].get("pretrained") or config["model"].get("name")

    def on_best(best_model, epoch, metrics):
        from .methods.io import save_adapter
        save_adapter(best_model, adapter_dir, v.method_cfg, base_name)

    return fit(model, tokenizer, v.task, data, config["trainer"], seed=config["seed"], decoder=v.decoder,
               max_length=v.max_length, state_dir=run_dir / "state", resume=config.get("resume", True),
               on_best=on_best, on_log=wb.log if wb else None,
               generation=config["task"].get("generation"), stop_after_steps=config.get("stop_after_steps"),
               progress_bar=config.get("progress_bar", True), dist=dist, should_stop=lambda: stop.requested)
