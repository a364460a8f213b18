"""MoRA (Jiang et al. 2024, "MoRA: High-Rank Updating for Parameter-Efficient Fine-Tuning"): one square r̂ x r̂
matrix M per adapted weight, between a non-parametric compression of the input (d_in -> r̂) and decompression of
the output (r̂ -> d_out), so that the update can have rank up to r̂ rather than r for the same parameter count:

    r̂ = round(sqrt((d_in + d_out) · r))        r̂² ≈ r (d_in + d_out), LoRA's count at rank r

(even for `rotation`), as the authors' code (kongds/MoRA, peft-mora `update_layer`). M starts at zero, so the model
starts as the base. The paper's operator types, by the authors' `mora_type`:

- `sharing` (type 1, the paper's choice for large r̂): the input is cut into chunks of r̂ (the last one filled with
  the input's first features) that are summed; the r̂ outputs are repeated to fill d_out;
- `rotation` (type 6, the paper's choice for small r̂): the chunks are kept apart, chunk i is rotated as RoPE does
  at position i, M acts on each chunk, and the outputs are concatenated (cut, or repeated, to d_out).

The update is linear in x, so ΔW is the operator applied to the identity (`delta_weight`): merge folds it into W.
GPT-2's fused c_attn gets one M per adapted slice, r̂ from that slice's width. PEFT has no MoRA, so there is no PEFT
export; tests check hand-computed small cases and the authors' own ΔW construction.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from .arch import available_sites, blocks, get_arch
from .base import Method, MethodConfigError, register
from .lora import WRAPPABLE, SliceDeltaLayer, _d_in_out

KINDS = ("sharing", "rotation")


def mora_rank(d_in: int, d_out: int, r: int, kind: str = "sharing") -> int:
    """r̂ with r̂² closest to LoRA's r (d_in + d_out) (the authors' rounding; even for the rotation's pairs)."""
    r_hat = int(math.sqrt((d_in + d_out) * r) + 0.5)
    return r_hat // 2 * 2 if kind == "rotation" else r_hat


def _rope(n: int, r_hat: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [n, r̂] of RoPE at positions 0..n-1 (the authors' base 10000 and half-split pairing)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, r_hat, 2, device=device).float() / r_hat))
    angles = torch.outer(torch.arange(n, device=device).float(), inv_freq)
    emb = torch.cat((angles, angles), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def mora_apply(x: torch.Tensor, m: torch.Tensor, d_out: int, kind: str) -> torch.Tensor:
    """The update of one weight: decompress(M · compress(x)), [..., d_in] -> [..., d_out]."""
    r_hat, d_in = m.shape[0], x.shape[-1]
    n = -(-d_in // r_hat)
    pad = n * r_hat - d_in
    if pad:
        x = torch.cat([x, x[..., :pad]], dim=-1)        # the authors fill the last chunk with the first features
    chunks = x.view(*x.shape[:-1], n, r_hat)
    if kind == "sharing":
        y = chunks.sum(dim=-2) @ m.T                    # [..., r̂]
        return torch.cat([y] * -(-d_out // r_hat), dim=-1)[..., :d_out]
    cos, sin = _rope(n, r_hat, x.dtype, x.device)
    half = r_hat // 2
    rotated = chunks * cos + torch.cat((-chunks[..., half:], chunks[..., :half]), dim=-1) * sin
    y = (rotated @ m.T).flatten(-2)                     # [..., n r̂]
    if y.shape[-1] < d_out:
        y = torch.cat([y] * -(-d_out // y.shape[-1]), dim=-1)
    return y[..., :d_out]


class MoRALayer(SliceDeltaLayer):
    """A frozen nn.Linear or Conv1D plus one square update per adapted output slice (`mora_M.<target>`)."""

    label = "MoRA"
    unmerge_call = "get_method('mora').unmerge(model)"

    def __init__(self, base_layer: nn.Module, slices: dict[str, slice], r: int, kind: str, dropout: float = 0.0):
        super().__init__()
        self.base_layer = base_layer
        self.fan_in_fan_out = isinstance(base_layer, Conv1D)
        w = base_layer.weight
        self.d_in = w.shape[0] if self.fan_in_fan_out else w.shape[1]
        self.slices, self.kind, self.r = dict(slices), kind, r
        self.r_hat = {t: mora_rank(self.d_in, sl.stop - sl.start, r, kind) for t, sl in self.slices.items()}
        self.mora_M = nn.ParameterDict({t: nn.Parameter(w.new_zeros(k, k)) for t, k in self.r_hat.items()})
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        if self._is_merged():
            return out
        xd = self.dropout(x)
        for t, sl in self.slices.items():
            out[..., sl] = out[..., sl] + mora_apply(xd, self.mora_M[t].to(x.dtype), sl.stop - sl.start, self.kind)
        return out

    def delta_weight(self, target: str) -> torch.Tensor:
        """ΔW of one target in nn.Linear orientation [d_slice, d_in]: the operator applied to the identity."""
        sl, m = self.slices[target], self.mora_M[target]
        eye = torch.eye(self.d_in, dtype=m.dtype, device=m.device)
        return mora_apply(eye, m, sl.stop - sl.start, self.kind).T

    def extra_repr(self) -> str:
        return f"kind={self.kind}, r={self.r}, " + ", ".join(f"{t}: r_hat={k}" for t, k in self.r_hat.items())


def mora_layers(model: nn.Module) -> list[tuple[str, MoRALayer]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, MoRALayer)]


def _slices(block: nn.Module, sites, targets) -> dict[str, dict[str, slice]]:
    """Module path -> {target: output slice}, in canonical order."""
    by_path: dict[str, dict[str, slice]] = {}
    for t in [t for t in sites if t in targets]:
        base = block.get_submodule(sites[t].path)
        _, d_out = _d_in_out(base)
        i, n = sites[t].chunk or (0, 1)
        by_path.setdefault(sites[t].path, {})[t] = slice(i * d_out // n, (i + 1) * d_out // n)
    return by_path


@register
class MoRA(Method):
    name = "mora"
    defaults = {"r": 8, "kind": "sharing", "dropout": 0.0, "targets": ["q", "v"]}

    def validate(self, model: nn.Module, cfg: dict) -> None:
        valid = available_sites(model)
        targets = cfg["targets"]
        if isinstance(targets, str) or not isinstance(targets, Sequence) or not targets:
            raise MethodConfigError(f"mora: targets={targets!r} must be a non-empty list; valid: {', '.join(valid)}")
        bad = [t for t in targets if t not in valid]
        if bad or len(set(targets)) != len(targets):
            raise MethodConfigError(f"mora: targets={list(targets)!r} must be distinct names from: {', '.join(valid)}")
        r = cfg["r"]
        if not (isinstance(r, numbers.Integral) and not isinstance(r, bool) and r > 0):
            raise MethodConfigError(f"mora: r={r!r} must be an integer > 0 (the LoRA rank whose budget r̂ matches)")
        if cfg["kind"] not in KINDS:
            raise MethodConfigError(f"mora: kind={cfg['kind']!r}; valid kinds: {', '.join(KINDS)}")
        if not (isinstance(cfg["dropout"], numbers.Real) and 0 <= cfg["dropout"] < 1):
            raise MethodConfigError(f"mora: dropout={cfg['dropout']!r} must be a number in [0, 1)")
        if mora_layers(model):
            raise MethodConfigError("mora: the model already has MoRA layers; start from a fresh model")
        sites = get_arch(model).sites
        for block in blocks(model):
            for t in targets:
                module = block.get_submodule(sites[t].path)
                if not isinstance(module, WRAPPABLE):
                    raise MethodConfigError(f"mora: target {t!r} is a {type(module).__name__}; MoRA wraps "
                                            f"nn.Linear or Conv1D only")

    def apply(self, model: nn.Module, cfg: dict) -> None:
        sites = get_arch(model).sites
        for block in blocks(model):
            for path, slices in _slices(block, sites, cfg["targets"]).items():
                parent, _, child = path.rpartition(".")
                layer = MoRALayer(block.get_submodule(path), slices, cfg["r"], cfg["kind"], cfg["dropout"])
                setattr(block.get_submodule(parent) if parent else block, child, layer)

    @classmethod
    def merge(cls, model: nn.Module) -> nn.Module:
        for _, layer in mora_layers(model):
            layer.merge()
        return model

    @classmethod
    def unmerge(cls, model: nn.Module) -> nn.Module:
        for _, layer in mora_layers(model):
            layer.unmerge()
        return model

    @classmethod
    def paper_param_formula(cls, model: nn.Module, cfg: dict) -> int:
        """Σ r̂² over adapted matrices, r̂ = mora_rank(d_in, d_out of the slice, r)."""
        sites, total = get_arch(model).sites, 0
        for block in blocks(model):
            for t in cfg["targets"]:
                module = block.get_submodule(sites[t].path)
                d_in, d_out = _d_in_out(module.base_layer if isinstance(module, MoRALayer) else module)
                total += mora_rank(d_in, d_out // (sites[t].chunk or (0, 1))[1], cfg["r"], cfg["kind"]) ** 2
        return total
