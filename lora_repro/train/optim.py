"""AdamW over the trainable parameters only, and the linear warmup/decay schedule."""
from __future__ import annotations

import math

import torch
from torch import nn


def no_decay(name: str) -> bool:
    """Biases and normalisation weights get no weight decay (LayerNorm, GPT-2's ln_1/ln_2/ln_f)."""
    lname = name.lower()
    return lname.endswith("bias") or "norm" in lname or ".ln_" in lname or lname.startswith("ln_")


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, betas, eps: float) -> torch.optim.AdamW:
    decay, plain = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (plain if no_decay(name) else decay).append(p)
    groups = [g for g in ({"params": decay, "weight_decay": weight_decay},
                          {"params": plain, "weight_decay": 0.0}) if g["params"]]
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps)


def warmup_steps(total_steps: int, ratio: float, steps: int | None) -> int:
    return int(steps) if steps else int(math.ceil(ratio * total_steps))


def linear_schedule(optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 to lr over `warmup` steps, then linear decay to 0 at `total`."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1) if warmup else 1.0
        return max(0.0, (total - step) / max(1, total - warmup))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
