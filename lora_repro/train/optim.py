"""The linear warmup/decay schedule (AdamW over the trainable tensors is `lora_repro.fastpath.make_optimizer`)."""
from __future__ import annotations

import math

import torch


def warmup_steps(total_steps: int, ratio: float, steps: int | None) -> int:
    return int(steps) if steps else int(math.ceil(ratio * total_steps))


def linear_schedule(optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 to lr over `warmup` steps, then linear decay to 0 at `total`."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1) if warmup else 1.0
        return max(0.0, (total - step) / max(1, total - warmup))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
