"""The shared trainer: `fit(model, tokenizer, task, data, trainer_cfg, ...)` -> FitResult."""
from .loop import FitResult, NonFiniteLossError, fit
from .precision import TRAINER_PRECISIONS as PRECISIONS

__all__ = ["PRECISIONS", "FitResult", "NonFiniteLossError", "fit"]
