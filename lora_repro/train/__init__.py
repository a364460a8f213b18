"""The shared trainer: `fit(model, tokenizer, task, data, trainer_cfg, ...)` -> FitResult."""
from .loop import PRECISIONS, FitResult, NonFiniteLossError, fit

__all__ = ["PRECISIONS", "FitResult", "NonFiniteLossError", "fit"]
