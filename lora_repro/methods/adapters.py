"""Adapter baselines of the paper (Sec 5.1): Adapter^H, Adapter^L, Adapter^P and Adapter^D.

An adapter is a bottleneck with a skip connection, h + up(act(down(h))): a d->r and an r->d
fully connected layer, both with biases. The up projection starts at zero, so a freshly adapted
model computes exactly what the base model computes. The base modules are never copied or renamed:
each adapter is a child module of the projection (or block) it follows, run by a forward hook, so
the base weights keep their state-dict keys and adapter tensors read
`...attention.output.dense.adapter.down.weight`.

Placement (module names come from arch.py):
- adapter_h (Houlsby et al. 2019): after the self-attention output projection and after the FFN
  output projection, before their residual connections: two per block. `placement: authors` (the
  default) puts it after the dropout that follows the projection, as the LoRA authors' code
  (examples/NLU/src/transformers/models/roberta/modeling_roberta.py, RobertaSelfOutput/RobertaOutput)
  does; `placement: projection` right on the projection's output (before that dropout).
- adapter_p (Pfeiffer et al. 2021): one per block on the FFN. `placement: authors` (the default; post-LN
  encoders) is the authors' RobertaOutput: h = dropout(ffn_out(.)), the adapter reads LayerNorm(h + x)
  ("after a LayerNorm", as the paper says) with residual h, and the block's LayerNorm is applied again:
  LN(h + up(act(down(LN(h + x)))) + x). `placement: projection`: a plain bottleneck on the FFN output
  projection (the only choice on pre-LN GPT-2).
- adapter_l (Lin et al. 2020): one per block on the block's output, with its own LayerNorm in
  front of the bottleneck: h + up(act(down(LN(h)))).
- adapter_d (AdapterDrop, Rücklé et al. 2020): Houlsby (or Pfeiffer) adapters, none in the lowest
  `drop` blocks.

Nonlinearity and initialisation: the authors' Houlsby adapters use swish (SiLU), their Pfeiffer adapters
ReLU; their adapter Linear layers are initialised by the model's `init_weights` (weights N(0, 0.02), the
config's initializer_range, biases 0), so an adapter does not start as the identity. `init: authors` does
that (the default of adapter_h and adapter_p, the rows marked † in Table 2); `init: identity` draws the
down projection from N(0, init_scale) and zeroes the up projection, so a freshly adapted model computes what
the base model computes (the default of adapter_l and adapter_d, copied rows whose sources start near the
identity).

Parameter count, the paper's |Θ| = L̂_Adpt·(2·d·r + r + d) + 2·L̂_LN·d: the LayerNorm term is the
Adapter^L's own LayerNorm (weight and bias, 2·d). Houlsby et al. also train the block LayerNorms;
the paper's counts leave them out (Table 15's GPT-3 AdapterH r=1, 4, 8, 16, 64 -> 7.1M, 21.2M,
40.1M, 77.9M, 304.4M are exactly two adapters per block; the block LayerNorms would add 4.7M to
each), so adapter_h trains only its adapters unless `train_layernorm=True`.
"""
from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn

from .arch import blocks, get_arch
from .base import Method, MethodConfigError, register

NONLINEARITIES = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU, "swish": nn.SiLU}
INITS = ("authors", "identity")
PLACEMENTS = ("authors", "projection")


class Adapter(nn.Module):
    """h + up(act(down(LN(h)))), LayerNorm only for Adapter^L.

    init="identity": down ~ N(0, init_scale), up = 0, so the adapter starts as the identity;
    init="authors": both weights ~ N(0, authors_std) (the model's initializer_range), biases 0."""

    def __init__(self, d: int, r: int, nonlinearity: str = "relu", init_scale: float = 1e-2,
                 layernorm: bool = False, device: Any = None, dtype: Any = None, init: str = "identity",
                 authors_std: float = 0.02):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.layernorm = nn.LayerNorm(d, **kw) if layernorm else None
        self.down = nn.Linear(d, r, **kw)
        self.act = NONLINEARITIES[nonlinearity]()
        self.up = nn.Linear(r, d, **kw)
        with torch.no_grad():
            nn.init.normal_(self.down.weight, std=authors_std if init == "authors" else init_scale)
            nn.init.zeros_(self.down.bias)
            if init == "authors":
                nn.init.normal_(self.up.weight, std=authors_std)
            else:
                nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.layernorm(h) if self.layernorm is not None else h
        return h + self.delta(x)


def _pfeiffer_authors_forward(self: nn.Module, hidden_states: torch.Tensor, input_tensor: torch.Tensor,
                              *args: Any, **kwargs: Any) -> torch.Tensor:
    """The authors' RobertaOutput with a Pfeiffer adapter: LN(h + adapter(LN(h + x)) + x), h = dropout(dense(.))."""
    h = self.dropout(self.dense(hidden_states))
    return self.LayerNorm(h + self.adapter.delta(self.LayerNorm(h + input_tensor)) + input_tensor)


def _adapt_output(module: nn.Module, args: Any, output: Any) -> Any:
    """Forward hook: run the module's `adapter` on its output (the first element of a tuple)."""
    if isinstance(output, tuple):
        return (module.adapter(output[0]), *output[1:])
    return module.adapter(output)


def _attach(module: nn.Module, adapter: Adapter) -> None:
    if hasattr(module, "adapter"):
        raise MethodConfigError(f"{type(module).__name__} already has an adapter; apply one adapter method per model")
    module.adapter = adapter
    module.register_forward_hook(_adapt_output)


def _attach_pfeiffer(module: nn.Module, adapter: Adapter) -> None:
    """The authors' Pfeiffer placement: the block's FFN output module runs `_pfeiffer_authors_forward`."""
    if hasattr(module, "adapter"):
        raise MethodConfigError(f"{type(module).__name__} already has an adapter; apply one adapter method per model")
    module.adapter = adapter
    module.forward = types.MethodType(_pfeiffer_authors_forward, module)


def _hidden_size(model: nn.Module) -> int:
    return int(model.config.hidden_size)


def _like(model: nn.Module) -> dict:
    p = next(blocks(model).parameters())
    return {"device": p.device, "dtype": p.dtype}


def _check_common(name: str, cfg: dict) -> None:
    r = cfg["r"]
    if not isinstance(r, int) or isinstance(r, bool) or r <= 0:
        raise MethodConfigError(f"{name}: r={r!r} must be a positive integer (the adapter bottleneck)")
    if cfg["nonlinearity"] not in NONLINEARITIES:
        raise MethodConfigError(
            f"{name}: nonlinearity={cfg['nonlinearity']!r} is not supported; valid: {sorted(NONLINEARITIES)}")
    s = cfg["init_scale"]
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0:
        raise MethodConfigError(f"{name}: init_scale={s!r} must be a number > 0 (std of the down projection's init)")
    if cfg.get("init", "identity") not in INITS:
        raise MethodConfigError(f"{name}: init={cfg['init']!r} is not supported; valid: {list(INITS)}")
    if cfg.get("placement", "projection") not in PLACEMENTS:
        raise MethodConfigError(f"{name}: placement={cfg['placement']!r} is not supported; valid: {list(PLACEMENTS)}")


def _check_layers(name: str, model: nn.Module, layers: Any) -> list[int]:
    n = len(blocks(model))
    if layers is None:
        return list(range(n))
    if (isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__")
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in layers)
            or len(set(layers)) != len(list(layers)) or not list(layers)):
        raise MethodConfigError(
            f"{name}: layers={layers!r} must be null (every block) or a non-empty list of distinct block "
            f"indices in [0, {n - 1}]")
    return sorted(layers)


class _AdapterMethod(Method):
    """Shared option checks and placement; subclasses say where adapters go."""
    sites: tuple[str, ...] = ()     # "attn_out" / "ffn_out" (arch.py) or "block"
    layernorm = False               # an own LayerNorm inside the adapter (Adapter^L)

    def layer_indices(self, model: nn.Module, cfg: dict) -> list[int]:
        return _check_layers(self.name, model, cfg.get("layers"))

    def sites_of(self, cfg: dict) -> tuple[str, ...]:
        return self.sites

    @classmethod
    def paper_param_formula(cls, model: nn.Module, cfg: dict) -> int:
        """|Θ| = L̂_Adpt·(2·d·r + r + d) + 2·L̂_LN·d: L̂_LN counts Adapter^L's own LayerNorms and, with
        `train_layernorm`, the blocks' LayerNorms."""
        method, d, r = cls(), _hidden_size(model), cfg["r"]
        indices = method.layer_indices(model, cfg)
        n_adapters = len(indices) * len(method.sites_of(cfg))
        n_ln = n_adapters if cls.layernorm else 0
        if cfg.get("train_layernorm"):
            n_ln += sum(isinstance(m, nn.LayerNorm) for i in indices for m in blocks(model)[i].modules())
        return n_adapters * (2 * d * r + r + d) + 2 * n_ln * d

    def validate(self, model: nn.Module, cfg: dict) -> None:
        _check_common(self.name, cfg)
        if any(isinstance(m, Adapter) for m in model.modules()):
            raise MethodConfigError(f"{self.name}: the model already has an adapter; apply one adapter method "
                                    "per model")
        self.layer_indices(model, cfg)
        for i in self.layer_indices(model, cfg):
            for site in self.sites_of(cfg):
                target = self._site_module(model, i, site, cfg.get("placement", "projection"))
                if hasattr(target, "adapter"):
                    raise MethodConfigError(f"{self.name}: block {i} {site} already has an adapter")

    def _site_module(self, model: nn.Module, i: int, site: str, placement: str = "projection") -> nn.Module:
        block = blocks(model)[i]
        if site == "block":
            return block
        arch = get_arch(model)
        path = getattr(arch, site)
        if placement == "authors":
            path = {"attn_out": arch.attn_out_dropout, "ffn_out": arch.ffn_out_dropout}[site]
            if self.name == "adapter_p":
                path = arch.ffn_output
            if not path:
                raise MethodConfigError(f"{self.name}: placement='authors' needs a post-LayerNorm block "
                                        f"(BERT, RoBERTa, DeBERTa-v2); model_type {model.config.model_type!r} has "
                                        "none: use placement='projection'")
        return block.get_submodule(path)

    def apply(self, model: nn.Module, cfg: dict) -> None:
        d = _hidden_size(model)
        placement = cfg.get("placement", "projection")
        for i in self.layer_indices(model, cfg):
            for site in self.sites_of(cfg):
                adapter = Adapter(d, cfg["r"], cfg["nonlinearity"], cfg["init_scale"], layernorm=self.layernorm,
                                  init=cfg.get("init", "identity"),
                                  authors_std=float(getattr(model.config, "initializer_range", 0.02)),
                                  **_like(model))
                target = self._site_module(model, i, site, placement)
                if self.name == "adapter_p" and placement == "authors":
                    _attach_pfeiffer(target, adapter)
                else:
                    _attach(target, adapter)
        if cfg.get("train_layernorm"):
            for i in self.layer_indices(model, cfg):
                for m in blocks(model)[i].modules():
                    if isinstance(m, nn.LayerNorm):
                        m.requires_grad_(True)


_COMMON = {"r": 64, "nonlinearity": "relu", "init_scale": 1e-2, "init": "identity"}
_AUTHORS = {"init": "authors", "placement": "authors"}  # the LoRA authors' NLU adapter code (Table 2's † rows)


@register
class HoulsbyAdapter(_AdapterMethod):
    name = "adapter_h"
    defaults = {**_COMMON, **_AUTHORS, "nonlinearity": "swish", "layers": None, "train_layernorm": False}
    sites = ("attn_out", "ffn_out")

    def validate(self, model: nn.Module, cfg: dict) -> None:
        if not isinstance(cfg["train_layernorm"], bool):
            raise MethodConfigError(f"adapter_h: train_layernorm={cfg['train_layernorm']!r} must be true or false")
        super().validate(model, cfg)


@register
class PfeifferAdapter(_AdapterMethod):
    name = "adapter_p"
    defaults = {**_COMMON, **_AUTHORS, "layers": None}
    sites = ("ffn_out",)


@register
class LinAdapter(_AdapterMethod):
    name = "adapter_l"
    defaults = {**_COMMON, "layers": None}
    sites = ("block",)
    layernorm = True


@register
class AdapterDrop(_AdapterMethod):
    """Houlsby (or Pfeiffer) adapters in every block except the lowest `drop` ones."""
    name = "adapter_d"
    defaults = {**_COMMON, "drop": 5, "base": "houlsby"}
    BASES = {"houlsby": HoulsbyAdapter.sites, "pfeiffer": PfeifferAdapter.sites}

    def layer_indices(self, model: nn.Module, cfg: dict) -> list[int]:
        return list(range(cfg["drop"], len(blocks(model))))

    def sites_of(self, cfg: dict) -> tuple[str, ...]:
        return self.BASES[cfg["base"]]

    def validate(self, model: nn.Module, cfg: dict) -> None:
        if cfg["base"] not in self.BASES:
            raise MethodConfigError(f"adapter_d: base={cfg['base']!r} is not supported; valid: {sorted(self.BASES)}")
        n = len(blocks(model))
        drop = cfg["drop"]
        if not isinstance(drop, int) or isinstance(drop, bool) or not 0 <= drop < n:
            raise MethodConfigError(f"adapter_d: drop={drop!r} must be an integer in [0, {n - 1}] "
                                    f"(adapters are removed from the lowest `drop` of {n} blocks)")
        super().validate(model, cfg)
