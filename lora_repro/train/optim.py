"""The optimizer and its schedule: AdamW over only the trainable tensors, linear warmup then linear decay.

Frozen tensors never enter the optimizer (no state, no loop); `fused=True` on CUDA (one kernel for the whole
update), `foreach=True` elsewhere; 1-D tensors (biases, LayerNorm) get no weight decay, as the paper's Hugging
Face trainer does (nanoGPT's `configure_optimizers` uses the same rule)."""
from __future__ import annotations

import math

import torch
from torch import nn


def warmup_steps(total_steps: int, ratio: float, steps: int | None) -> int:
    return int(steps) if steps else int(math.ceil(ratio * total_steps))


def linear_schedule(optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 to lr over `warmup` steps, then linear decay to 0 at `total`."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1) if warmup else 1.0
        return max(0.0, (total - step) / max(1, total - warmup))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def no_decay(name: str, p: torch.Tensor) -> bool:
    """Biases and LayerNorm weights (every 1-D tensor) get no weight decay, as in Hugging Face's Trainer."""
    return p.ndim < 2


def lr_scales(model: nn.Module) -> dict[str, float]:
    """Learning-rate multipliers that a method sets on its modules (`module.lr_scales`, local parameter name ->
    multiplier; LoRA+ gives B lr_ratio times A's learning rate), by full parameter name."""
    out = {}
    for module_name, module in model.named_modules():
        for local, scale in getattr(module, "lr_scales", {}).items():
            out[f"{module_name}.{local}" if module_name else local] = float(scale)
    return out


def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                   eps: float = 1e-8, impl: str = "auto") -> torch.optim.AdamW:
    """AdamW over only the trainable tensors; frozen ones never enter the optimizer (no state, no loop).

    impl: "fused" (one kernel; CUDA, and CPU on recent torch), "foreach" (multi-tensor), "loop" (the
    per-parameter reference), "auto" = fused on CUDA, foreach elsewhere.
    """
    impls = ("auto", "fused", "foreach", "loop")
    if impl not in impls:
        raise ValueError(f"impl={impl!r} is not an AdamW implementation; valid: {', '.join(impls)}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("make_optimizer: the model has no trainable parameters (was apply_method called?)")
    if impl == "auto":
        impl = "fused" if named[0][1].is_cuda else "foreach"
    scales = lr_scales(model)
    groups = []
    for scale in sorted({scales.get(n, 1.0) for n, _ in named}):  # one pair of groups per learning rate
        decay = [p for n, p in named if not no_decay(n, p) and scales.get(n, 1.0) == scale]
        plain = [p for n, p in named if no_decay(n, p) and scales.get(n, 1.0) == scale]
        extra = {} if scale == 1.0 else {"lr": lr * scale}
        groups += [g for g in ({"params": decay, "weight_decay": weight_decay, **extra},
                               {"params": plain, "weight_decay": 0.0, **extra}) if g["params"]]
    kwargs = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, **kwargs)
