"""One run, end to end: resolved config -> validated run -> model + method + data -> `train.fit` -> record.

Everything that can be checked without compute is checked first (`validate`): the trainer values, the
task and its data_dir, the method options against the model's architecture, built on the meta device
from its config alone (no weights). A run's identity is `records.run_identity` of the resolved config;
a finished record with that identity is skipped (`skip_existing=true`), so a re-launched sweep only
runs what is missing, and a stopped run resumes from `<results>/checkpoints/<run_id>/state/`.
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
PRECISIONS = ("fp32", "bf16", "fp16")


class RunConfigError(ValueError):
    """A bad run config; the message names the key, the value and what is allowed."""


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


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise RunConfigError(f"{key}={value!r} is invalid; allowed: {allowed}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_trainer(t: Mapping) -> None:
    _check(_number(t.get("lr")) and t["lr"] > 0, "trainer.lr", t.get("lr"), "a number > 0")
    for key in ("epochs", "batch_size"):
        _check(isinstance(t.get(key), int) and t[key] > 0, f"trainer.{key}", t.get(key), "an integer > 0")
    for key in ("grad_accum", "eval_batch_size"):
        if t.get(key) is not None:
            _check(isinstance(t[key], int) and t[key] > 0, f"trainer.{key}", t[key], "an integer > 0")
    _check(t.get("precision", "fp32") in PRECISIONS, "trainer.precision", t.get("precision"), str(list(PRECISIONS)))
    wr = t.get("warmup_ratio", 0.0) or 0.0
    _check(_number(wr) and 0 <= wr < 1, "trainer.warmup_ratio", wr, "a number in [0, 1)")
    ws = t.get("warmup_steps", 0) or 0
    _check(isinstance(ws, int) and ws >= 0, "trainer.warmup_steps", ws, "an integer >= 0 (0: use warmup_ratio)")
    _check(t.get("eval_epochs", "all") in ("all", "last"), "trainer.eval_epochs", t.get("eval_epochs"),
           "'all' (evaluate every epoch, keep the best) or 'last'")
    ls = t.get("label_smoothing", 0.0) or 0.0
    _check(_number(ls) and 0 <= ls < 1, "trainer.label_smoothing", ls, "a number in [0, 1)")
    mg = t.get("max_grad_norm")
    _check(mg is None or (_number(mg) and mg >= 0), "trainer.max_grad_norm", mg, "null/0 (no clipping) or a number > 0")
    wd = t.get("weight_decay", 0.0) or 0.0
    _check(_number(wd) and wd >= 0, "trainer.weight_decay", wd, "a number >= 0")
    betas = t.get("adam_betas", [0.9, 0.999])
    _check(isinstance(betas, (list, tuple)) and len(betas) == 2 and all(_number(b) and 0 <= b < 1 for b in betas),
           "trainer.adam_betas", betas, "two numbers in [0, 1)")


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
    """Check a resolved config before any compute; raise RunConfigError naming the bad key."""
    from .methods import MethodConfigError, resolve_config
    from .methods.arch import UnsupportedModelError, get_arch
    from .models import ModelConfigError, is_decoder_only, max_positions, model_config
    from .tasks import TaskConfigError, get_task

    config = plain_config(cfg)
    for key in ("model", "task", "method", "trainer"):
        _check(isinstance(config.get(key), Mapping), key, config.get(key), "a config group (see conf/)")
    _check(isinstance(config.get("seed"), int), "seed", config.get("seed"), "an integer")
    _check_trainer(config["trainer"])
    t = config["task"]
    try:
        task = get_task(t.get("name"))
    except TaskConfigError as e:
        raise RunConfigError(f"task.name: {e}") from None
    data_dir = t.get("data_dir")
    if data_dir is not None:
        _check(Path(data_dir).is_dir(), "task.data_dir", data_dir,
               f"an existing directory with {task.train_split}/{'/'.join(task.eval_splits)} files "
               "in the hub schema (or null to download from the hub)")
    _check(isinstance(t.get("max_length"), int) and t["max_length"] > 0, "task.max_length", t.get("max_length"),
           "an integer > 0")
    for key in ("max_train_samples", "max_eval_samples"):
        if t.get(key) is not None:
            _check(isinstance(t[key], int) and t[key] > 0, f"task.{key}", t[key], "null or an integer > 0")
    try:
        mconf = model_config(config["model"])
    except ModelConfigError as e:
        raise RunConfigError(str(e)) from None
    except OSError as e:  # a hub id without network / cache, or a local dir without config.json
        raise RunConfigError(f"model.pretrained={config['model'].get('pretrained')!r}: cannot load its config "
                             f"(no network and not in the Hugging Face cache, or not a checkpoint dir): {e}") from None
    decoder = is_decoder_only(mconf)
    if not decoder and task.kind not in ("classification", "regression"):
        raise RunConfigError(f"task={task.name!r} is a {task.kind} task: it needs a decoder-only model "
                             f"(e.g. model=gpt2-medium), not model={config['model'].get('name')!r}")
    if decoder and task.kind != "generation":
        raise RunConfigError(f"task={task.name!r} is a {task.kind} task: it needs an encoder model "
                             f"(e.g. model=roberta-base), not the decoder-only model={config['model'].get('name')!r}; "
                             "GPT-2 takes generation tasks (e2e, wikisql, samsum, gpt2/mnli)")
    try:
        method_cls, options = resolve_config(config["method"])
        model = meta_model(mconf, task, decoder)
        get_arch(model)
        method_cls().validate(model, options)
    except (MethodConfigError, UnsupportedModelError) as e:
        raise RunConfigError(f"method: {e}") from None
    init_from = config.get("method_init_from")
    if init_from is not None:
        _check(Path(init_from, "adapter.safetensors").is_file(), "method_init_from", init_from,
               "an adapter directory holding adapter.safetensors (e.g. <results>/checkpoints/<run_id>/adapter)")
    limit = max_positions(mconf)
    max_length = min(t["max_length"], limit) if limit else t["max_length"]
    return ValidatedRun(config=config, run_id=run_id_of(config), task=task,
                        method_cfg={"name": method_cls.name, **options}, model_config=mconf, decoder=decoder,
                        max_length=max_length)


# --- pieces of a run ------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_adapter(model, directory: Path, method_cfg: dict, base_model: str) -> Path:
    """The adapter-only checkpoint: the lora part's `methods.io.save_adapter` when present, else the
    same layout written here (trainable tensors by state-dict key + adapter_config.json)."""
    try:
        from .methods.io import save_adapter as save
    except ImportError:
        save = _save_trainable
    save(model, directory, method_cfg, base_model)
    return Path(directory)


def _save_trainable(model, directory, method_cfg: dict, base_model: str) -> None:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(tensors, str(directory / "adapter.safetensors"))
    records.atomic_write_json(directory / "adapter_config.json", {**method_cfg, "base_model": base_model})


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


def make_record(v: ValidatedRun, report, result, status: str, adapter_dir: Path | None, error: str | None = None):
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
    }
    if adapter_dir is not None:
        rec["adapter_dir"] = str(adapter_dir)
    if error is not None:
        rec["error"] = error
    return rec


def run(cfg: Any) -> dict | None:
    """Run one config to a record; returns the record (None when stopped early by stop_after_steps)."""
    v = validate(cfg)
    config = v.config
    results_dir = config.get("results_dir") or "results"
    if config.get("skip_existing", True):
        done = records.finished_record(results_dir, v.run_id)
        if done is not None:
            log.warning("skipping run %s: finished record %s exists", v.run_id,
                        records.record_path(results_dir, v.run_id))
            return done

    from .methods import apply_method
    from .models import load_model
    from .train import dist as dist_mod
    from .train import fit

    dist = dist_mod.setup()
    run_dir = Path(results_dir) / "checkpoints" / v.run_id
    adapter_dir = run_dir / "adapter"
    seed_everything(config["seed"])
    model, tokenizer = load_model(config["model"], v.task)
    report = apply_method(model, v.method_cfg)
    if config.get("method_init_from"):
        loaded = init_from_adapter(model, config["method_init_from"])
        log.info("initialised %d tensors from %s", len(loaded), config["method_init_from"])
    log.info("run %s: %s on %s with %s: %s trainable (paper count) of %s", v.run_id, config["model"].get("name"),
             v.task.name, v.method_cfg["name"], f"{report.params.trainable_paper:,}", f"{report.params.total:,}")
    data = load_data(v.task, config["task"])

    from . import logging_wandb
    wb = logging_wandb.start(config.get("logger"), config, v.run_id, results_dir) if dist.main else None
    base_name = config["model"].get("pretrained") or config["model"].get("name")

    def on_best(best_model, epoch, metrics):
        save_adapter(best_model, adapter_dir, v.method_cfg, base_name)

    try:
        result = fit(model, tokenizer, v.task, data, config["trainer"], seed=config["seed"], decoder=v.decoder,
                     max_length=v.max_length, state_dir=run_dir / "state", resume=config.get("resume", True),
                     on_best=on_best, on_log=wb.log if wb else None,
                     generation=config["task"].get("generation"), stop_after_steps=config.get("stop_after_steps"),
                     progress_bar=config.get("progress_bar", True), dist=dist)
    except Exception as e:
        if dist.main:
            rec = make_record(v, report, None, records.STATUS_FAILED, None, error=f"{type(e).__name__}: {e}")
            records.write_record(rec, results_dir)
            if wb:
                wb.finish_with(rec)
        raise
    finally:
        dist_mod.teardown()
    if result.interrupted:
        log.warning("run %s stopped after %d steps (stop_after_steps); re-run the same command to resume",
                    v.run_id, result.steps)
        if wb:
            wb.run.finish(exit_code=0)
        return None
    if not dist.main:
        return None
    rec = make_record(v, report, result, records.STATUS_FINISHED, adapter_dir if adapter_dir.exists() else None)
    path = records.write_record(rec, results_dir)
    if wb:
        wb.finish_with(rec)
    shutil.rmtree(run_dir / "state", ignore_errors=True)  # finished: only the adapter is kept
    log.info("run %s finished: %s=%s (best epoch %s); record %s", v.run_id, v.task.main_metric,
             rec["metrics"].get(v.task.main_metric), result.best_epoch, path)
    return rec
