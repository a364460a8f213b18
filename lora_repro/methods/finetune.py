"""Full fine-tuning (`ft`) and FT^Top2 (`ft_top2`: only the last two blocks train, as in Li & Liang 2021)."""
from __future__ import annotations

from torch import nn

from .arch import blocks
from .base import Method, MethodConfigError, register


@register
class FullFineTune(Method):
    name = "ft"

    def apply(self, model: nn.Module, cfg: dict) -> None:
        model.requires_grad_(True)


@register
class TopLayersFineTune(Method):
    """Only the top `layers` blocks train; embeddings and the lower blocks stay frozen."""
    name = "ft_top2"
    defaults = {"layers": 2}

    def validate(self, model: nn.Module, cfg: dict) -> None:
        n = len(blocks(model))
        if not isinstance(cfg["layers"], int) or not 1 <= cfg["layers"] <= n:
            raise MethodConfigError(f"ft_top2: layers={cfg['layers']!r} must be an integer in [1, {n}]")

    def apply(self, model: nn.Module, cfg: dict) -> None:
        for block in list(blocks(model))[-cfg["layers"]:]:
            block.requires_grad_(True)
