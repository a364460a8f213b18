"""The shared trainer: `fit(model, tokenizer, task, data, trainer_cfg, ...)` -> FitResult.

The names are loaded on first use (PEP 562), so a torch-free module of this package (`train.progress`, which
`sweeps.compose` uses while composing a preset) imports without torch: `lora-repro tables` composes presets to
know which runs a cell counts, on machines without the training stack too (tests/report/test_no_torch.py)."""
from __future__ import annotations

from typing import Any

__all__ = ["PRECISIONS", "FitResult", "NonFiniteLossError", "fit"]


def __getattr__(name: str) -> Any:
    if name in ("FitResult", "NonFiniteLossError", "fit"):
        from . import loop
        return getattr(loop, name)
    if name == "PRECISIONS":
        from .precision import TRAINER_PRECISIONS
        return TRAINER_PRECISIONS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
