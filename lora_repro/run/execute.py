"""One run, end to end: resolved config -> validated run -> model + method + data -> `train.fit` -> record.

Everything that can be checked without compute is checked first (`validate`, which reports every
problem at once): the trainer values, the task, its data_dir and split files, max_length against the
model's positions, the method options against the model's architecture, built on the meta device from
its config alone (no weights). A run's identity is `records.run_identity` of the resolved config; a
finished record with that identity is skipped (`skip_existing=true`), so a re-launched sweep only runs
what is missing, and a stopped run resumes from `<results>/checkpoints/<run_id>/state/`.

What can go wrong after validation leaves a trace: any exception writes a failed record (error, last
step; for CUDA OOM the batch size and peak memory) that a re-launch replaces; a stop signal checkpoints
at the next step boundary (run/preempt.py); one process per run identity trains at a time (a flock
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

from .. import mutations, paths, records
from . import adapter_store, cluster
from .validate import ValidatedRun, validate

log = logging.getLogger("lora_repro.run")

# --- pieces of a run ------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_data(task, tcfg: Mapping):
    data = task.load(tcfg.get("data_dir"))
    for split, limit in [(task.train_split, tcfg.get("max_train_samples"))] + \
                        [(s, tcfg.get("max_eval_samples")) for s in task.eval_splits]:
        if limit is not None and len(data[split]) > limit:
            data[split] = data[split].select(range(limit))
    return data


def make_record(v: ValidatedRun, report, result, status: str, adapter_dir: Path | None, error: str | None = None,
                **extra) -> dict:
    """The run's `records.Record` as a dict (the fields, their meanings and order live there); ``extra`` sets
    optional fields such as a failure's last_step (an unknown name is a TypeError, not a silent new key)."""
    m = v.method_cfg
    return records.Record(
        run_id=v.run_id, created_at=records.now_iso(), git_sha=records.git_sha(),
        model=v.config["model"].get("name"), task=v.task.name, method=m["name"],
        r=m.get("r"), alpha=m.get("alpha"), targets=m.get("targets"), seed=v.config["seed"],
        trainable_params=report.params.trainable_paper if report else None,
        trainable_params_with_head=report.params.trainable if report else None,
        total_params=report.params.total if report else None,
        metrics=result.metrics if result else {}, main_metric=v.task.main_metric,
        peak_vram_bytes=result.peak_memory_bytes if result else None,
        peak_memory_kind=result.peak_memory_kind if result else None,
        tokens_per_s=result.tokens_per_s if result else None,
        train_wall_s=result.train_wall_s if result else None,
        status=status, config=v.config, method_config=m,
        history=result.history if result else [], steps=result.steps if result else None,
        precision=result.extra.get("precision") if result else None,   # what `auto` resolved to
        adapter_dir=records.OMIT if adapter_dir is None else str(adapter_dir),
        error=records.OMIT if error is None else error,
        **cluster.where(), resumed_from_step=result.extra.get("resumed_from_step") if result else None,
        **extra,
    ).as_dict()


def failure_record(v: ValidatedRun, report, error: BaseException, device=None) -> dict:
    """What a failed run leaves: the error, the last completed step, and for an out-of-memory error the
    batch size and the peak memory reached (so the fix is obvious from the record alone)."""
    import torch

    from ..train.measure import peak_memory

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
    status: str                   # one of records.OUTCOMES (their life cycle is described there)
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
    from .preempt import deferred_stop_signals

    with deferred_stop_signals() as stop:
        try:
            return _execute(v, stop)
        finally:
            stop.deliver()  # a signal that came after the last step boundary (or during a failure): honour it


def _execute(v: ValidatedRun, stop) -> Outcome:
    """One process per run identity at a time (a lock in its checkpoint dir, held by rank 0): two sweeps
    sharing a results dir never train the same run twice or write its state and adapter at once."""
    results_dir = v.config.get("results_dir") or paths.DEFAULT_RESULTS
    if (skipped := _skip(v, results_dir)) is not None:
        return skipped
    if int(os.environ.get("RANK", "0")) != 0 or mutations.active("no-lock"):
        return _execute_locked(v, stop, results_dir)
    lock = paths.run_lock(results_dir, v.run_id)
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
    from ..train import dist as dist_mod

    dist = dist_mod.setup()
    made: dict = {}     # what _train built so far (the method report, the W&B run), for a failure record
    try:
        result = _train(v, dist, results_dir, stop, made)
    except Exception as e:
        wb = made.get("wandb")
        if dist.main:
            rec = failure_record(v, made.get("report"), e, dist.device)
            records.write_record(rec, results_dir)
            kept = records.finished_record(results_dir, v.run_id) is not None   # a failure never replaces it
            log.error("run %s failed at step %s: %s; %s %s", v.run_id, rec["last_step"], rec["error"],
                      "the finished record is kept:" if kept else "failure record", path)
            if wb:
                wb.finish_with(rec)
        raise
    finally:
        dist_mod.teardown()
    report, wb, adapter_dir = made["report"], made["wandb"], made["adapter_dir"]
    if result.interrupted:
        why = "a stop signal" if result.stop_reason == "signal" else "stop_after_steps"
        log.warning("run %s stopped after %d steps (%s); state saved in %s: re-run the same command to resume",
                    v.run_id, result.steps, why, paths.state_dir(results_dir, v.run_id))
        if wb:
            wb.stop()
        return Outcome("stopped", v.run_id)
    if not dist.main:
        return Outcome("done", v.run_id)
    # the new adapter goes beside the finished one; the record (written atomically) is the switch
    final = adapter_store.promote(adapter_dir, results_dir, v.run_id) if adapter_dir.exists() else None
    rec = make_record(v, report, result, records.STATUS_FINISHED, final)
    records.write_record(rec, results_dir)
    if final is not None:
        adapter_store.publish(final, results_dir, v.run_id)
    if wb:
        wb.finish_with(rec)
    shutil.rmtree(paths.state_dir(results_dir, v.run_id), ignore_errors=True)  # only the adapter stays
    log.info("run %s finished: %s=%s (best epoch %s); record %s", v.run_id, v.task.main_metric,
             rec["metrics"].get(v.task.main_metric), result.best_epoch, path)
    return Outcome("done", v.run_id, rec, path)


def _train(v: ValidatedRun, dist, results_dir, stop, made: dict):
    """Model + method + data -> fit; `made` collects the method report, the W&B run and the adapter dir."""
    from ..methods import apply_method
    from ..models import load_model
    from ..train import fit

    config = v.config
    adapter_dir = made["adapter_dir"] = adapter_store.staged_dir(results_dir, v.run_id)  # published when finished
    if dist.main:
        adapter_store.clear_stale_stage(results_dir, v.run_id, resume=config.get("resume", True))
    seed_everything(config["seed"])
    model, tokenizer = load_model(config["model"], v.task)
    report = made["report"] = apply_method(model, v.method_cfg)
    if config.get("method_init_from"):
        from ..methods.io import init_from_adapter
        loaded = init_from_adapter(model, config["method_init_from"])
        log.info("initialised %d tensors from %s", len(loaded), config["method_init_from"])
    log.info("run %s: %s on %s with %s: %s trainable (paper count) of %s", v.run_id, config["model"].get("name"),
             v.task.name, v.method_cfg["name"], f"{report.params.trainable_paper:,}", f"{report.params.total:,}")
    data = load_data(v.task, config["task"])

    from . import wandb_logger
    sweep = cluster.preset()
    if dist.main:
        cluster.name_slurm_job(cluster.job_label(config, v.run_id, sweep))
    wb = made["wandb"] = wandb_logger.start(config.get("logger"), config, v.run_id, results_dir, preset=sweep,
                                            where=cluster.where()) if dist.main else None
    base_name = config["model"].get("pretrained") or config["model"].get("name")

    def on_best(best_model, epoch, metrics):
        from ..methods.io import save_adapter
        save_adapter(best_model, adapter_dir, v.method_cfg, base_name)

    return fit(model, tokenizer, v.task, data, config["trainer"], seed=config["seed"], decoder=v.decoder,
               max_length=v.max_length, state_dir=paths.state_dir(results_dir, v.run_id),
               resume=config.get("resume", True),
               on_best=on_best, on_log=wb.log if wb else None,
               generation=config["task"].get("generation"), stop_after_steps=config.get("stop_after_steps"),
               progress_bar=config.get("progress_bar", True), dist=dist, should_stop=lambda: stop.requested)
