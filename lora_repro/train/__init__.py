"""The shared trainer: `fit(model, tokenizer, task, data, trainer_cfg, ...)` -> FitResult."""
from .loop import PRECISIONS, FitResult, fit

__all__ = ["PRECISIONS", "FitResult", "fit"]
