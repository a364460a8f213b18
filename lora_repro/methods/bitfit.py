"""BitFit (Zaken et al., 2021): only the bias vectors of the body train."""
from __future__ import annotations

from torch import nn

from .arch import base_model
from .base import Method, register


@register
class BitFit(Method):
    name = "bitfit"

    def apply(self, model: nn.Module, cfg: dict) -> None:
        for name, p in base_model(model).named_parameters():
            if name.endswith("bias"):
                p.requires_grad_(True)
