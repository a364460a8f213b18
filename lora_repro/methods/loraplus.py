"""LoRA+ (Hayou et al. 2024, "LoRA+: Efficient Low Rank Adaptation of Large Models"): LoRA whose B factors learn
`lr_ratio` (the paper's λ) times faster than A.

The model is LoRA's, unchanged; the difference is in the optimizer, which the trainer builds from the per-parameter
multipliers a module declares (`module.lr_scales`, read by `lora_repro.train.optim.make_optimizer`). Registered
under its own name so that records tell it apart and `lora` runs keep their identities. As PEFT's
`create_loraplus_optimizer`: B (with and without weight decay) at lr * λ, everything else at lr.
"""
from __future__ import annotations

import numbers

from torch import nn

from .base import MethodConfigError, register
from .lora import LoRA, LoRALayer


@register
class LoRAPlus(LoRA):
    name = "loraplus"
    defaults = {**LoRA.defaults, "lr_ratio": 16}   # λ = 2^4, the LoRA+ paper's recommendation

    def validate(self, model: nn.Module, cfg: dict) -> None:
        super().validate(model, cfg)
        ratio = cfg["lr_ratio"]
        if not (isinstance(ratio, numbers.Real) and not isinstance(ratio, bool) and ratio > 0):
            raise MethodConfigError(f"loraplus: lr_ratio={ratio!r} must be a number > 0 (B's lr = lr_ratio x A's)")

    def make_layer(self, base: nn.Module, slices: dict[str, slice], r: dict[str, int], cfg: dict) -> LoRALayer:
        layer = LoRALayer(base, slices, r, cfg["alpha"], cfg["dropout"])
        layer.lr_scales = {f"lora_B.{t}": float(cfg["lr_ratio"]) for t in slices}
        return layer
