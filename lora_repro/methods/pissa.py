"""PiSSA (Meng et al. 2024, "Principal Singular Values and Singular Vectors Adaptation"): LoRA whose A and B
start from the top-r singular triplets of W, while the frozen base keeps only the residual.

    W = U S V^T,  A = sqrt(S_r / s) V_r^T,  B = U_r sqrt(S_r / s),  W_res = W - s B A     (s = alpha / r)

so the adapted model equals the base at initialisation, and training moves the principal part of W. As PEFT's
`init_lora_weights="pissa"` (exact SVD, computed in fp32). An initialisation of LoRA's layer rather than a new
layer: registered under its own name so that records and tables tell it apart and `lora` runs keep their identities.

The residual is recomputed from the base weights whenever the method is applied, so an adapter saved by
`save_adapter` (its A, B and head) loads back onto a fresh base model with `apply_adapter`, and a PEFT export with
`init_lora_weights="pissa"` loads back with `PeftModel.from_pretrained` (PEFT runs the same SVD on load).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import MethodConfigError, register
from .lora import LoRA, LoRALayer, lora_layers


@torch.no_grad()
def pissa_init(layer: LoRALayer) -> None:
    """Put the top-r singular part of each adapted slice into (A, B) and leave the residual in the base weight."""
    w = layer.base_layer.weight
    if w.is_meta:       # parameter counting on the meta device: shapes only
        return
    for t, sl in layer.slices.items():
        r, s = layer.r[t], layer.scaling[t]
        ws = (w[:, sl].T if layer.fan_in_fan_out else w[sl]).float()
        u, sv, vh = torch.linalg.svd(ws, full_matrices=False)
        root = torch.sqrt(sv[:r] / s)
        a, b = root[:, None] * vh[:r], u[:, :r] * root[None, :]
        layer.lora_A[t].copy_(a)
        layer.lora_B[t].copy_(b)
        residual = (ws - s * b @ a).to(w.dtype)
        (w[:, sl] if layer.fan_in_fan_out else w[sl]).copy_(residual.T if layer.fan_in_fan_out else residual)


@register
class PiSSA(LoRA):
    name = "pissa"
    defaults = dict(LoRA.defaults)

    def validate(self, model: nn.Module, cfg: dict) -> None:
        super().validate(model, cfg)
        if cfg.get("init_a", "kaiming") != "kaiming":
            raise MethodConfigError(f"pissa: init_a={cfg['init_a']!r}; PiSSA's A comes from the SVD of W, so "
                                    f"init_a must stay 'kaiming' (unused)")

    def make_layer(self, base: nn.Module, slices: dict[str, slice], r: dict[str, int], cfg: dict) -> LoRALayer:
        layer = LoRALayer(base, slices, r, cfg["alpha"], cfg["dropout"])
        pissa_init(layer)
        return layer

    @classmethod
    def export_peft(cls, model: nn.Module, directory, base_model_name_or_path: str):
        """PEFT format with `init_lora_weights="pissa"`: PEFT recomputes the residual from the base on load. PEFT's
        SVD is per module, so a fused projection with several adapted slices (GPT-2's c_attn) cannot be written."""
        from .peft_export import export_to_peft
        for name, layer in lora_layers(model):
            d_out = layer.base_layer.weight.shape[1 if layer.fan_in_fan_out else 0]
            if any((sl.start, sl.stop) != (0, d_out) for sl in layer.slices.values()):
                raise ValueError(f"pissa: {name} adapts slices {list(layer.slices)} of a fused projection; PEFT's "
                                 f"PiSSA takes one SVD of the whole module, so this model cannot be exported")
        return export_to_peft(model, directory, base_model_name_or_path, init_lora_weights="pissa")
