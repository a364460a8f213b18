"""The one shared trainer: a plain torch loop (not HF Trainer) that every method and task goes through.

AdamW on the trainable parameters, linear warmup/decay, clipping, label smoothing, fp32/bf16/fp16
autocast, gradient accumulation, dynamic padding, evaluation after every epoch with the paper's
best-epoch rule (or once at the end: `eval_epochs: last`), and a checkpoint after every epoch (or
every N steps) from which a killed run resumes to exactly the same result: the data order is a
function of (seed, epoch), and the RNG, optimizer and scheduler states travel in the checkpoint.
A stop signal (`should_stop`) takes the same path at the next step boundary; a NaN/inf loss stops the
run before the optimizer step with an error naming the step.
"""
from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .. import mutations
from ..checks import ConfigError
from ..methods.prefix import inserted_positions
from . import dist as dist_mod
from .config import TrainerConfig
from .evaluate import evaluate_encoder, evaluate_generation, generation_settings
from .features import collate, encode_decoder, encode_encoder, epoch_order
from .measure import Stopwatch, peak_memory, reset_peak_memory
from .optim import linear_schedule, make_optimizer, warmup_steps
from .precision import autocast as precision_autocast
from .precision import prepare_model_for_training, resolve_precision
from .state import load_state, save_state

log = logging.getLogger("lora_repro.train")

# Called before every training micro-batch as hook(epoch, batch_index, step): instrumentation (the fault
# suite paces runs through it so that a kill lands mid-epoch; a profiler could mark steps). Rank 0 and others.
BATCH_HOOKS: list[Callable[[int, int, int], None]] = []


@dataclass
class FitResult:
    metrics: dict                      # the best epoch's metrics (first eval split unprefixed) + best_epoch
    history: list[dict]                # every evaluated epoch's metrics
    best_epoch: int | None
    steps: int
    tokens_per_s: float | None
    train_wall_s: float
    peak_memory_bytes: int
    peak_memory_kind: str
    interrupted: bool = False          # stopped early; resume to finish
    stop_reason: str | None = None     # "stop_after_steps" | "signal" (a preemption/stop signal)
    extra: dict = field(default_factory=dict)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/inf: training cannot recover from it, so the run stops and names the step."""

    def __init__(self, value: float, step: int, epoch: int, batch: int):
        super().__init__(f"loss is {value} at step {step} (epoch {epoch + 1}, micro-batch {batch + 1}); "
                         "lower trainer.lr, set trainer.max_grad_norm, or use trainer.precision=fp32/bf16")
        self.step = step


class ResumeMismatchError(ConfigError):
    """A saved state from another training regime (process count, resolved precision) than this launch:
    a config error (one line, exit 2), since the fix is the launch command, not the code."""


def check_regime(saved: Mapping | None, now: Mapping, state_dir) -> None:
    """Refuse to resume a state saved under another regime (a state without one predates the check)."""
    if saved is not None and dict(saved) != dict(now):
        diff = ", ".join(f"{k}={saved.get(k)!r} then, {now.get(k)!r} now" for k in now if saved.get(k) != now.get(k))
        raise ResumeMismatchError(
            f"cannot resume {state_dir}: it was saved under another training regime ({diff}); relaunch as "
            "before (same torchrun process count, same device kind or an explicit trainer.precision), or pass "
            "resume=false to train this run from scratch")


def token_loss(logits, labels, label_smoothing: float):
    """Next-token loss on the labelled (target) positions only."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100,
                           label_smoothing=label_smoothing)


def model_inputs(batch: dict, model) -> dict:
    """A collated training batch as the model's keyword arguments (labels popped by the caller). A decoder
    batch's `prompt_len` becomes `infix_position` for a model that takes one (the prefix methods), so the
    infix sits between prompt and target in training exactly where generation puts it."""
    batch = dict(batch)
    prompt_len = batch.pop("prompt_len", None)
    if prompt_len is not None and "infix_position" in inspect.signature(model.forward).parameters:
        batch["infix_position"] = prompt_len
    return batch


def fit(model, tokenizer, task, data, trainer_cfg: Mapping, *, seed: int, decoder: bool, max_length: int,
        state_dir=None, resume: bool = True, on_best: Callable | None = None, on_log: Callable | None = None,
        generation: Mapping | None = None, stop_after_steps: int | None = None, progress_bar: bool = True,
        dist: dist_mod.Dist | None = None, should_stop: Callable[[], bool] | None = None) -> FitResult:
    """Train `model` (method already applied) on `data[task.train_split]`, evaluating `task.eval_splits`.

    `on_best(model, epoch, metrics)` runs on rank 0 whenever an epoch beats the best so far (the run
    saves its adapter there); `on_log(dict)` gets step losses and epoch metrics. `should_stop()` is asked
    at every step boundary (true once a stop signal arrived): fit saves the resume state and returns
    interrupted. A NaN/inf loss raises NonFiniteLossError; any exception leaving fit carries `last_step`
    (optimizer steps completed) for the run's failure record.
    """
    from .progress import bar as make_bar
    from .progress import epoch_line

    dist = dist or dist_mod.Dist(device=next(model.parameters()).device)
    device = dist.device
    model.to(device)
    regression = task.kind == "regression"
    cfg = trainer_cfg if isinstance(trainer_cfg, TrainerConfig) else TrainerConfig.from_mapping(trainer_cfg)
    bs, accum, epochs = cfg.batch_size, cfg.grad_accum, cfg.epochs
    eval_bs = cfg.effective_eval_batch_size
    label_smoothing = float(cfg.label_smoothing)
    max_grad_norm = cfg.max_grad_norm
    precision = resolve_precision(cfg.precision, device)
    # The fast path: frozen weights stored once in bf16/fp16 (no fp32 copy, no per-step cast), trainable fp32.
    prepare_model_for_training(model, precision)

    def autocast():
        return precision_autocast(device, precision)

    # --- data: tokenized once, batched per epoch in a seed-determined order ----------------------
    max_length -= inserted_positions(model)  # text + a prefix method's inserted tokens fit the positions
    train_split = data[task.train_split]
    if decoder:
        train = encode_decoder(task, train_split, tokenizer, max_length)
    else:
        train = encode_encoder(task, train_split, tokenizer, max_length, model.config)
    splits = list(task.eval_splits)
    if decoder:
        evals = {s: task.eval_items(data[s]) for s in splits}
        gen = generation_settings(task, generation)
    else:
        evals = {s: encode_encoder(task, data[s], tokenizer, max_length, model.config) for s in splits}
    pad_id = tokenizer.pad_token_id
    n_local = len(epoch_order(len(train), seed, 0, dist.rank, dist.world))
    batches_per_epoch = math.ceil(n_local / bs)
    steps_per_epoch = math.ceil(batches_per_epoch / accum)
    total_steps = steps_per_epoch * epochs

    # --- optimisation -----------------------------------------------------------------------------
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(model, float(cfg.lr), float(cfg.weight_decay), cfg.adam_betas, float(cfg.adam_eps))
    warmup = warmup_steps(total_steps, float(cfg.warmup_ratio), cfg.warmup_steps)
    scheduler = linear_schedule(optimizer, warmup, total_steps)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    save_every = cfg.save_every_steps
    log_every = max(1, cfg.log_every_steps)

    # The regime is what a run id does not pin (the process count, what precision=auto resolved to):
    # a state saved under another regime would finish as a hybrid that looks like a clean run.
    regime = {"world_size": dist.world, "precision": precision}
    progress = {"epoch": 0, "batches_done": 0, "step": 0, "history": [], "best": None, "best_epoch": None,
                "tokens": 0, "train_s": 0.0, "wall_s": 0.0, "loss_sum": 0.0, "loss_n": 0, "regime": regime}
    resumed_from = None                # the step a resumed run continues from (for its record and log)
    if state_dir is not None and resume and not mutations.active("no-resume"):
        restored = load_state(state_dir, model, optimizer, scheduler, scaler)
        if restored is not None:
            check_regime(restored.get("regime"), regime, state_dir)
            progress, resumed_from = restored, restored["step"]
            log.info("resumed from step %d (epoch %d, batch %d) in %s", progress["step"], progress["epoch"] + 1,
                     progress["batches_done"], state_dir)
    ddp_model = dist_mod.wrap(model, dist)
    reset_peak_memory(device)
    watch = Stopwatch(progress["train_s"])
    wall0 = time.perf_counter() - progress["wall_s"]

    def checkpoint():
        progress["train_s"], progress["wall_s"] = watch.seconds, time.perf_counter() - wall0
        if state_dir is not None and dist.main:
            save_state(state_dir, model, optimizer, scheduler, scaler, progress)
        dist_mod.barrier(dist)

    def result(interrupted: bool, reason: str | None = None) -> FitResult:
        peak, kind = peak_memory(device)
        best = progress["best"] or {}
        metrics = {**best, "best_epoch": progress["best_epoch"]} if best else {}
        return FitResult(metrics=metrics, history=progress["history"], best_epoch=progress["best_epoch"],
                         steps=progress["step"], train_wall_s=time.perf_counter() - wall0,
                         tokens_per_s=(progress["tokens"] * dist.world / watch.seconds) if watch.seconds else None,
                         peak_memory_bytes=peak, peak_memory_kind=kind, interrupted=interrupted,
                         stop_reason=reason, extra={"precision": precision, "resumed_from_step": resumed_from})

    bar = make_bar(total_steps, f"train {task.name}", enabled=progress_bar and dist.main, initial=progress["step"],
                   unit="step")   # a bar at a terminal, a log line a minute in a log file

    def stop_requested() -> bool:
        """Every rank stops at the same step boundary (a signal may reach only some of them)."""
        return dist_mod.any_rank(bool(should_stop and should_stop()), dist)

    def run_epochs() -> FitResult:
        while progress["epoch"] < epochs:
            epoch = progress["epoch"]
            order = epoch_order(len(train), seed, epoch, dist.rank, dist.world)
            batches = [order[i:i + bs] for i in range(0, len(order), bs)]
            model.train()
            for bi in range(progress["batches_done"], len(batches)):
                for hook in BATCH_HOOKS:
                    hook(epoch, bi, progress["step"])
                batch = collate([train[i] for i in batches[bi]], pad_id, decoder, regression)
                batch = {k: v.to(device) for k, v in model_inputs(batch, model).items()}
                labels = batch.pop("labels")
                group_end = min(len(batches), (bi // accum + 1) * accum)  # last micro-batch of this step
                with watch:
                    with autocast():
                        logits = ddp_model(**batch).logits
                    if decoder:
                        loss = token_loss(logits, labels, label_smoothing)
                    elif regression:
                        loss = F.mse_loss(logits.float().squeeze(-1), labels)
                    else:
                        loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
                    scaled = loss / (group_end - (bi // accum) * accum)
                    (scaler.scale(scaled) if scaler else scaled).backward()
                    progress["tokens"] += int(batch["attention_mask"].sum())
                    loss = loss.detach()
                    loss_value = float(loss)
                    if dist_mod.any_rank(not math.isfinite(loss_value), dist):  # before the optimizer step
                        raise NonFiniteLossError(loss_value, progress["step"] + 1, epoch, bi)
                    progress["loss_sum"] += loss_value
                    progress["loss_n"] += 1
                    if bi + 1 == group_end:
                        if scaler:
                            scaler.unscale_(optimizer)
                        if max_grad_norm:
                            torch.nn.utils.clip_grad_norm_(trainable, float(max_grad_norm))
                        if scaler:
                            scaler.step(optimizer)
                            scaler.update()
                        else:
                            optimizer.step()
                        scheduler.step()
                        optimizer.zero_grad(set_to_none=True)
                if bi + 1 != group_end:
                    continue
                progress["step"] += 1
                progress["batches_done"] = bi + 1
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss):.4f}")
                if on_log and dist.main and progress["step"] % log_every == 0:
                    on_log({"train/loss": float(loss), "train/lr": scheduler.get_last_lr()[0],
                            "train/epoch": epoch + (bi + 1) / len(batches)}, progress["step"])
                stop = "stop_after_steps" if stop_after_steps is not None and progress["step"] >= stop_after_steps \
                    else "signal" if stop_requested() else None
                if stop or (save_every and progress["step"] % save_every == 0):
                    checkpoint()
                if stop:
                    return result(interrupted=True, reason=stop)
            # --- end of epoch: evaluate, keep the best, checkpoint --------------------------------------
            evaluate_now = cfg.eval_epochs == "all" or epoch + 1 == epochs
            if dist.main and evaluate_now:
                eval_model = dist_mod.unwrap(ddp_model)
                per_split = {}
                for s in splits:
                    ebar = make_bar(len(evals[s]), f"{'generate' if decoder else 'eval'} {s}", enabled=progress_bar,
                                    unit="example")
                    if decoder:
                        per_split[s] = evaluate_generation(eval_model, tokenizer, task, evals[s], gen, max_length,
                                                           eval_bs, device, autocast, ebar)
                    else:
                        per_split[s] = evaluate_encoder(eval_model, task, evals[s], eval_bs, pad_id, device, autocast,
                                                        ebar)
                    ebar.close()
                metrics = task.merge_split_metrics(per_split)
                metrics["train_loss"] = progress["loss_sum"] / max(1, progress["loss_n"])
                progress["history"].append({"epoch": epoch + 1, **metrics})
                best = progress["best"]
                if best is None or metrics[task.main_metric] > best[task.main_metric]:
                    progress["best"], progress["best_epoch"] = metrics, epoch + 1
                    if on_best:
                        on_best(eval_model, epoch + 1, metrics)
                log.info("%s", epoch_line(epoch + 1, epochs, metrics, task.main_metric, progress["best_epoch"],
                                          progress["step"], total_steps, watch.seconds))
            elif dist.main:
                log.info("epoch %d/%d: train_loss=%.4g (not evaluated: trainer.eval_epochs=%s)", epoch + 1, epochs,
                         progress["loss_sum"] / max(1, progress["loss_n"]), cfg.eval_epochs)
                if on_log:
                    on_log({f"eval/{k}": v for k, v in metrics.items()}, progress["step"])
            progress.update(epoch=epoch + 1, batches_done=0, loss_sum=0.0, loss_n=0)
            checkpoint()
            if progress["epoch"] < epochs and stop_requested():
                return result(interrupted=True, reason="signal")
        return result(interrupted=False)

    try:
        return run_epochs()
    except Exception as e:
        e.last_step = progress["step"]  # the failure record says where the run stopped
        raise
    finally:
        bar.close()
