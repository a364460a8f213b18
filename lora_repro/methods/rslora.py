"""rsLoRA (Kalajdzievski 2023, "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA"): LoRA with the
update scaled by alpha / sqrt(r) instead of alpha / r, so that raising the rank does not shrink the update.

An option of LoRA's layer (`LoRALayer(rank_stabilized=True)`), registered under its own name so that records and
tables tell it apart and `lora` runs keep their identities. Same surgery, merge, key names and PEFT export
(`use_rslora: true`) as LoRA; only the scale differs.
"""
from __future__ import annotations

from torch import nn

from .base import AdapterLoadError, register
from .lora import LoRA, LoRALayer, lora_layers, lora_scale


@register
class RSLoRA(LoRA):
    name = "rslora"
    defaults = dict(LoRA.defaults)

    @classmethod
    def factor_scale(cls, alpha: float, r: int) -> float:
        return lora_scale(alpha, r, rank_stabilized=True)

    def make_layer(self, base: nn.Module, slices: dict[str, slice], r: dict[str, int], cfg: dict) -> LoRALayer:
        return LoRALayer(base, slices, r, cfg["alpha"], cfg["dropout"], rank_stabilized=True)

    @classmethod
    def check_adapter_config(cls, model: nn.Module, config: dict, source: str = "adapter") -> None:
        super().check_adapter_config(model, config, source)
        if not all(layer.rank_stabilized for _, layer in lora_layers(model)):
            raise AdapterLoadError(f"{source} is rsLoRA but the model's LoRA layers scale by alpha/r")

