"""DoRA (Liu et al. 2024, "Weight-Decomposed Low-Rank Adaptation"): a LoRA update of the direction and a trainable
magnitude per output unit,

    W' = m · (W0 + s B A) / ||W0 + s B A||_c        (||.||_c: the norm of each output unit's weight vector)

with m initialised to ||W0||_c, so the adapted model equals the base at initialisation. As the paper's Sec 4.3
and PEFT's `use_dora=True`, the norm is treated as a constant in the backward pass (detached), which saves the
memory of its graph. Computed as PEFT does: h = W0 x + b + (g - 1) W0 x + g s B A x with g = m / ||W0 + s B A||_c.

A layer of its own (`DoRALayer`, a LoRALayer plus `lora_magnitude.<target>` of shape [d_out of the slice]); a
method of its own because it adds parameters and changes merge. GPT-2's fused c_attn gets one magnitude per
adapted slice; in the PEFT export the unadapted slice's magnitude is its own norm, which leaves it unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from .arch import blocks, get_arch
from .base import Method, register
from .lora import LoRA, LoRALayer, ranks


class DoRALayer(LoRALayer):
    label = "DoRA"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with torch.no_grad():
            self.lora_magnitude = nn.ParameterDict(
                {t: nn.Parameter(self.slice_weight(t).float().norm(dim=1).to(self.base_layer.weight.dtype))
                 for t in self.slices})
        self._merge_norms: dict[str, torch.Tensor] = {}

    def slice_weight(self, target: str) -> torch.Tensor:
        """W0 of one target in nn.Linear orientation [d_slice, d_in] (a view of the base weight)."""
        w, sl = self.base_layer.weight, self.slices[target]
        return w[:, sl].T if self.fan_in_fan_out else w[sl]

    def weight_norm(self, target: str) -> torch.Tensor:
        """||W0 + s B A||_c, detached (DoRA Sec 4.3)."""
        with torch.no_grad():
            w = self.slice_weight(target)
            return (w + self.delta_weight(target).to(w.dtype)).norm(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        if self._is_merged():
            return out
        xd = self.dropout(x)
        bias = self.base_layer.bias
        for t, _, sl in self._plan:
            sl = sl or slice(0, out.shape[-1])
            w = self.slice_weight(t).to(x.dtype)
            g = (self.lora_magnitude[t].to(x.dtype) / self.weight_norm(t).to(x.dtype))
            if isinstance(self.dropout, nn.Identity):   # W0 x is in `out` already (less its bias)
                base = out[..., sl] - (bias[sl].to(x.dtype) if bias is not None else 0)
            else:
                base = xd @ w.T
            lora = (xd @ self.lora_A[t].to(x.dtype).T) @ self.lora_B[t].to(x.dtype).T
            out[..., sl] = out[..., sl] + (g - 1) * base + g * self.scaling[t] * lora
        return out

    @torch.no_grad()
    def merge(self) -> None:
        if self.merged:
            return
        for t in self.slices:
            w = self.slice_weight(t)
            norm = self.weight_norm(t)
            self._merge_norms[t] = norm
            g = (self.lora_magnitude[t] / norm).to(w.dtype)
            w.copy_(g[:, None] * (w + self.delta_weight(t).to(w.dtype)))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged:
            return
        for t in self.slices:
            w = self.slice_weight(t)
            g = (self.lora_magnitude[t] / self._merge_norms.pop(t)).to(w.dtype)
            w.copy_(w / g[:, None] - self.delta_weight(t).to(w.dtype))
        self.merged = False

    def peft_extra_tensors(self) -> dict[str, torch.Tensor]:
        """PEFT's one magnitude per module output: ours per adapted slice, the norm of W0 elsewhere (a no-op)."""
        w = self.base_layer.weight
        m = (w.T if self.fan_in_fan_out else w).detach().float().norm(dim=1).to(w.dtype)
        for t, sl in self.slices.items():
            m[sl] = self.lora_magnitude[t].detach()
        return {"lora_magnitude_vector": m}


@register
class DoRA(LoRA):
    name = "dora"
    defaults = dict(LoRA.defaults)

    # the Sec 7 analyses read ΔW = s B A; DoRA's update also rescales W0, so it declares no low-rank factors
    low_rank_factors = Method.__dict__["low_rank_factors"]

    def make_layer(self, base: nn.Module, slices: dict[str, slice], r: dict[str, int], cfg: dict) -> LoRALayer:
        return DoRALayer(base, slices, r, cfg["alpha"], cfg["dropout"])

    @classmethod
    def export_peft(cls, model: nn.Module, directory, base_model_name_or_path: str):
        from .peft_export import export_to_peft
        return export_to_peft(model, directory, base_model_name_or_path, use_dora=True)

    @classmethod
    def paper_param_formula(cls, model: nn.Module, cfg: dict) -> int:
        """LoRA's r (d_in + d_out) per adapted matrix plus its magnitude vector, d_out."""
        from .lora import _d_in_out
        sites, total = get_arch(model).sites, 0
        for block in blocks(model):
            for t in ranks(cfg):
                _, d_out = _d_in_out(block.get_submodule(sites[t].path))
                total += d_out // (sites[t].chunk or (0, 1))[1]
        return super().paper_param_formula(model, cfg) + total
