"""QLoRA (Dettmers et al. 2023): LoRA on a frozen base whose linear layers are stored in 4-bit NormalFloat with
double-quantized block constants (`lora_repro.methods.nf4`), computing in the input's dtype (bf16 or fp32).

Every projection of every block (q, k, v, o, ffn_in, ffn_out) is quantized, as the paper quantizes every linear
layer of the body (embeddings, LayerNorms, biases and the task head stay in their dtype), and LoRA adapts
`targets`, by default all of them (the paper's finding that LoRA on every linear layer is needed to match 16-bit
fine-tuning). `backend`: `torch` is the pure-torch NF4 reference (runs anywhere), `bitsandbytes` uses its kernels
(CUDA; validated to be importable), `auto` picks bitsandbytes where it can run. Both store the same codes.

No merge: folding B A into 4-bit weights would requantize them (lossy), so the method does not declare it. The
adapter is an ordinary LoRA adapter of the quantized base (save_adapter, export_peft). `frozen_weight_bits(model)`
reports the frozen weights' storage per weight (about 4.13 bits with double quantization).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

from .arch import blocks, get_arch
from .base import Method, MethodConfigError, register
from .lora import LoRA
from .nf4 import BLOCK_SIZES, NF4Weight, bitsandbytes_available, dequantize_nf4, quantize_nf4

BACKENDS = ("auto", "torch", "bitsandbytes")


class NF4Linear(nn.Module):
    """A frozen linear layer whose weight is NF4: y = x dequant(W)^T + b, W in nn.Linear orientation.

    A GPT-2 Conv1D is stored transposed, so every quantized projection is a plain linear map [d_out, d_in]."""
    frozen_quantized = True

    def __init__(self, module: nn.Module, block_size: int = 64, double_quant: bool = True, backend: str = "torch"):
        super().__init__()
        w = module.weight.T if isinstance(module, Conv1D) else module.weight
        self.out_features, self.in_features = w.shape
        self.dtype, self.block_size, self.backend = w.dtype, block_size, backend
        self.bias = None if module.bias is None else nn.Parameter(module.bias.detach().clone(), requires_grad=False)
        if backend == "bitsandbytes":
            from .nf4 import nf4_bitsandbytes
            self.packed, self.quant_state = nf4_bitsandbytes(w, block_size, double_quant)
        else:
            q = quantize_nf4(w, block_size, double_quant)
            self._nf4_names, self._nf4_shape = tuple(q.tensors()), q.shape   # the tensors live in buffers only
            for name, t in q.tensors().items():
                self.register_buffer(f"nf4_{name}", t)

    def quantized(self) -> NF4Weight:
        """The stored NF4 weight (buffers re-read: `.to(device)` moves them)."""
        fields = {name: getattr(self, f"nf4_{name}") for name in self._nf4_names}
        return NF4Weight(fields["packed"], fields["absmax"], fields.get("absmax2"), fields.get("offset"),
                         self._nf4_shape, self.block_size)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight [d_out, d_in] (a new tensor each call; frozen)."""
        if self.backend == "bitsandbytes":
            from .nf4 import dequantize_bitsandbytes
            return dequantize_bitsandbytes(self.packed, self.quant_state).to(self.dtype)
        return dequantize_nf4(self.quantized(), self.dtype)

    def frozen_bytes(self) -> int:
        if self.backend == "bitsandbytes":
            s = self.quant_state
            stats = [s.absmax] + ([s.state2.absmax, s.offset.reshape(1)] if getattr(s, "nested", False) else [])
            return self.packed.numel() * self.packed.element_size() + sum(t.numel() * t.element_size() for t in stats)
        return self.quantized().nbytes()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "bitsandbytes":
            import bitsandbytes as bnb
            bias = None if self.bias is None else self.bias.to(x.dtype)
            return bnb.matmul_4bit(x, self.packed.t(), bias=bias, quant_state=self.quant_state)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, dequantize_nf4(self.quantized(), x.dtype), bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, nf4 block={self.block_size}, " \
               f"backend={self.backend}"


def nf4_layers(model: nn.Module) -> list[tuple[str, NF4Linear]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, NF4Linear)]


def frozen_weight_bits(model: nn.Module) -> float:
    """Storage of the quantized frozen weights per weight (codes and statistics), over every NF4Linear."""
    layers = [m for _, m in nf4_layers(model)]
    if not layers:
        raise ValueError("frozen_weight_bits: the model has no NF4 layers (apply_method(model, 'qlora') first)")
    return 8 * sum(m.frozen_bytes() for m in layers) / sum(m.in_features * m.out_features for m in layers)


@register
class QLoRA(LoRA):
    name = "qlora"
    defaults = {"r": 8, "alpha": 16, "dropout": 0.0, "targets": ["q", "k", "v", "o", "ffn_in", "ffn_out"],
                "block_size": 64, "double_quant": True, "backend": "auto"}

    # folding B A into 4-bit weights would requantize them: QLoRA declares no merge
    merge = Method.__dict__["merge"]
    unmerge = Method.__dict__["unmerge"]

    def validate(self, model: nn.Module, cfg: dict) -> None:
        super().validate(model, cfg)
        if cfg["block_size"] not in BLOCK_SIZES:
            raise MethodConfigError(f"qlora: block_size={cfg['block_size']!r}; valid block sizes: {BLOCK_SIZES}")
        if not isinstance(cfg["double_quant"], bool):
            raise MethodConfigError(f"qlora: double_quant={cfg['double_quant']!r} must be true or false")
        if cfg["backend"] not in BACKENDS:
            raise MethodConfigError(f"qlora: backend={cfg['backend']!r}; valid backends: {', '.join(BACKENDS)}")
        if cfg["backend"] == "bitsandbytes" and not bitsandbytes_available():
            raise MethodConfigError("qlora: backend='bitsandbytes' needs bitsandbytes importable and a CUDA device; "
                                    "use backend='torch' (the NF4 reference) or 'auto'")

    def apply(self, model: nn.Module, cfg: dict) -> None:
        backend = cfg["backend"]
        meta = next(model.parameters()).is_meta    # counting on the meta device: the reference needs no kernels
        if backend == "auto":
            backend = "bitsandbytes" if bitsandbytes_available() and not meta else "torch"
        sites = get_arch(model).sites
        for block in blocks(model):
            for path in dict.fromkeys(s.path for s in sites.values()):
                parent, _, child = path.rpartition(".")
                module = block.get_submodule(path)
                setattr(block.get_submodule(parent) if parent else block, child,
                        NF4Linear(module, cfg["block_size"], cfg["double_quant"], backend))
        super().apply(model, cfg)
