"""Precision rules, one home: what `trainer.precision` takes, what `auto` resolves to on a device (or on the
GPU a sweep is planned for), and the fast path of a low-precision run.

LoRA's speed claim (Sec 4.2: ~25% faster training than full fine-tuning on GPT-3) comes from not computing,
storing or updating anything for the frozen weights:

- `prepare_model_for_training(model, "bf16")`: frozen matrix weights (the Linear/Conv1D layers, where the time
  and memory go) are cast to bf16 once; trainable tensors stay fp32 (they are the optimizer's master weights),
  and so do LayerNorm and embedding weights (small, and the ones whose rounding moves every activation: mixed
  precision as AMP does it keeps them fp32, and the authors trained in fp32 or fp16 AMP over fp32 weights).
  No fp32 master copy of the frozen matrices, no per-step autocast cast of weights that never change. Run the
  step under `autocast(model, precision)` so that the fp32 trainable layers (LoRA factors, adapters, the task
  head) compute in bf16 with the bf16 base.
- `trainer.precision=fp32` changes nothing: the authors' regime for RoBERTa and GPT-2 (plain fp32).
- AdamW over only the trainable tensors is `train.optim.make_optimizer`.

The trainer calls `resolve_precision`, then `prepare_model_for_training` after `apply_method`, then
`make_optimizer`, and runs every step under `autocast`. This module needs only torch.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "fp16")
TRAINER_PRECISIONS = ("auto", *PRECISIONS)  # what `trainer.precision` takes (`auto` -> resolve_precision)
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not supported; valid: {', '.join(PRECISIONS)}")


def native_bf16(device: torch.device | str) -> bool:
    """Does `device` compute bf16 natively (a CUDA GPU with bf16 support)?"""
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_precision(precision: str, device: torch.device | str | None = None, *, bf16: bool | None = None) -> str:
    """`auto` (the trainer's default): bf16 where the device computes it natively, fp32 elsewhere; any other value
    is returned as it is, after checking it. `bf16=True/False` says it of a device that is not this machine's
    (the planner prices a run on the GPU it will run on: an H100 takes bf16)."""
    if precision == "auto":
        return "bf16" if (native_bf16(device) if bf16 is None else bf16) else "fp32"
    _check_precision(precision)
    return precision


def compute_dtype(precision: str) -> torch.dtype:
    _check_precision(precision)
    return _DTYPES[precision]


def prepare_model_for_training(model: nn.Module, precision: str = "fp32", frozen_low_precision: bool = True
                               ) -> nn.Module:
    """Cast frozen parameters and floating buffers to the training precision (bf16/fp16), once, in place,
    except LayerNorm and embedding weights (`keeps_fp32`).

    Trainable parameters stay fp32: they are what the optimizer updates, so they need the full precision and
    need no separate master copy. A module that holds both (a Linear or LayerNorm whose bias trains, as in BitFit)
    is left in fp32 as a whole: ops like CPU layer_norm reject mixed weight/bias dtypes. With
    `frozen_low_precision=False` (or fp32) nothing changes: the classic mixed precision path where autocast
    casts every weight in every step. Call after `apply_method` (which decides what trains) and before
    `make_optimizer`.
    """
    dtype = compute_dtype(precision)
    if dtype == torch.float32 or not frozen_low_precision:
        return model
    kept = {id(p) for m in model.modules() if keeps_fp32(m) for p in m.parameters(recurse=False)}  # tied too
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if keeps_fp32(module) or any(p.requires_grad for p in own):
            continue  # a module mixing trainable and frozen tensors (BitFit's biases) keeps one dtype
        for p in own:
            if p.is_floating_point() and id(p) not in kept:
                p.data = p.data.to(dtype)
    for module in model.modules():
        if keeps_fp32(module):
            continue
        for name, b in module.named_buffers(recurse=False):
            if b is not None and b.is_floating_point():
                setattr(module, name, b.to(dtype))
    return model


def keeps_fp32(module: nn.Module) -> bool:
    """LayerNorm (any *LayerNorm/*RMSNorm class) and embedding tables stay fp32 on the low-precision fast path;
    a tied LM head shares the embedding's tensor, so it stays fp32 too."""
    name = type(module).__name__
    return isinstance(module, (nn.LayerNorm, nn.Embedding)) or name.endswith(("LayerNorm", "RMSNorm"))


def autocast(model_or_device: nn.Module | torch.device | str, precision: str = "fp32"):
    """The context a training or evaluation step runs in: autocast to bf16/fp16, or nothing for fp32."""
    dtype = compute_dtype(precision)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    if isinstance(model_or_device, nn.Module):
        device = next(model_or_device.parameters()).device
    else:
        device = torch.device(model_or_device)
    return torch.autocast(device_type=device.type, dtype=dtype)
