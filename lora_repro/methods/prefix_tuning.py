"""Prefix-tuning as Li & Liang (2021) define it: a trainable key and value prefix in every attention layer.

Table 3's PreLayer row is copied from Li & Liang, whose method differs from the paper's PreLayer
(`prefix_layer`, which replaces hidden states at the inserted positions): every layer attends to l_p
extra keys and values that no token computes. Their code (XiangLi1999/PrefixTuning, gpt2/train_control.py,
`PrefixTuning.get_prompt`) reparametrises them with an MLP during training:

    P' = Embedding(l_p, d)                                    (their `wte`)
    P  = Linear(mid, 2·L·d)(tanh(Linear(d, mid)(P')))          (their `control_trans`, mid_dim 512)
    P.view(l_p, 2·L, heads, d/heads): layer i takes entries 2i (keys) and 2i+1 (values)

and hands P to GPT-2 as `past_key_values`, so the text's positions start at l_p (as there). `mid_dim: 0`
trains the keys and values directly (no reparametrisation). After training they keep only P (2·L·d·l_p
numbers, their "0.1%"); here the trainable count is what trains (embedding + MLP), the paper's formula
below; the stored P is `prefix_kv.key_values()`.

Only decoder-only models (GPT-2): `model.forward` adds the prefix cache and extends `attention_mask`;
`model.generate` starts from a cache that holds the prefix (one copy per beam).
"""
from __future__ import annotations

import inspect
import types
from typing import Any

import torch
from torch import nn

from .arch import base_model, blocks, get_arch
from .base import Method, MethodConfigError, register
from .prefix import _wrapping


class PrefixKV(nn.Module):
    """The prefix keys and values of every layer: [L, 2, heads, l_p, head_dim], from an MLP or directly."""

    def __init__(self, n_layers: int, n_heads: int, d: int, prefix_len: int, mid_dim: int):
        super().__init__()
        self.n_layers, self.n_heads, self.d, self.prefix_len, self.mid_dim = n_layers, n_heads, d, prefix_len, mid_dim
        if mid_dim:
            self.wte = nn.Embedding(prefix_len, d)
            self.control_trans = nn.Sequential(nn.Linear(d, mid_dim), nn.Tanh(), nn.Linear(mid_dim, 2 * n_layers * d))
        else:
            self.kv = nn.Parameter(torch.randn(prefix_len, 2 * n_layers * d) * 0.02)

    @property
    def num_inserted(self) -> int:
        return self.prefix_len

    def key_values(self) -> torch.Tensor:
        flat = self.control_trans(self.wte.weight) if self.mid_dim else self.kv          # [l_p, 2·L·d]
        per = flat.view(self.prefix_len, 2 * self.n_layers, self.n_heads, self.d // self.n_heads)
        return per.permute(1, 2, 0, 3).reshape(self.n_layers, 2, self.n_heads, self.prefix_len, -1)

    def cache(self, batch: int):
        from transformers import DynamicCache

        kv = self.key_values()
        cache = DynamicCache()
        for i in range(self.n_layers):
            cache.update(kv[i, 0][None].expand(batch, -1, -1, -1), kv[i, 1][None].expand(batch, -1, -1, -1), i)
        return cache

    def extra_repr(self) -> str:
        return f"prefix_len={self.prefix_len}, mid_dim={self.mid_dim}"


def _cache_keyword(model: nn.Module) -> str:
    """transformers >= 5.x names the cache `cache` (and deprecates `past_key_values`); older versions do not."""
    return "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"


def _forward(self: nn.Module, *args: Any, **kwargs: Any):
    prefix: PrefixKV = base_model(self).prefix_kv
    original = type(self).forward
    if args:
        names = list(inspect.signature(original).parameters)[1:]
        kwargs = {**dict(zip(names, args)), **kwargs}
    key = _cache_keyword(self)
    past = kwargs.get(key, kwargs.get("past_key_values"))
    if past is not None and past.get_seq_length() > 0:  # inside generate: the cache already holds the prefix
        return original(self, **kwargs)
    if kwargs.get("position_ids") is not None:
        raise ValueError("prefix_tuning: positions follow the prefix; do not pass position_ids")
    ref = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
    if ref is None:
        raise ValueError("prefix_tuning needs input_ids or inputs_embeds")
    b, n = ref.shape[:2]
    mask = kwargs.get("attention_mask")
    mask = torch.ones(b, n, dtype=torch.long, device=ref.device) if mask is None else mask
    kwargs.pop("past_key_values", None)
    kwargs[key] = prefix.cache(b)
    kwargs["attention_mask"] = torch.cat([torch.ones(b, prefix.prefix_len, dtype=mask.dtype, device=mask.device),
                                          mask], dim=1)
    return original(self, **kwargs)


def _generate(self: nn.Module, input_ids: torch.Tensor | None = None, attention_mask=None, **kwargs: Any):
    """Generate from a cache holding the prefix (one copy per row and beam); returns [input_ids, new tokens]."""
    prefix: PrefixKV = base_model(self).prefix_kv
    input_ids = kwargs.pop("inputs", None) if input_ids is None else input_ids
    if input_ids is None or "inputs_embeds" in kwargs:
        raise ValueError("prefix_tuning: generate needs input_ids")
    b, l_p = input_ids.shape[0], prefix.prefix_len
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    rows = b * max(1, int(kwargs.get("num_beams") or 1)) * max(1, int(kwargs.get("num_return_sequences") or 1))
    with torch.no_grad():
        cache = prefix.cache(rows)
    # generate skips the ids the cache already covers: l_p placeholders stand for the prefix, then are cut off
    placeholders = input_ids.new_zeros(b, l_p)
    out = type(self).generate(self, input_ids=torch.cat([placeholders, input_ids], 1),
                              attention_mask=torch.cat([mask.new_ones(b, l_p), mask], 1),
                              **{_cache_keyword(self): cache}, **kwargs)
    if isinstance(out, torch.Tensor):
        return out[:, l_p:]
    out.sequences = out.sequences[:, l_p:]
    return out


@register
class PrefixTuning(Method):
    name = "prefix_tuning"
    defaults = {"prefix_len": 10, "mid_dim": 512}

    def validate(self, model: nn.Module, cfg: dict) -> None:
        for key, low in (("prefix_len", 1), ("mid_dim", 0)):
            v = cfg[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise MethodConfigError(f"{self.name}: {key}={v!r} must be an integer >= {low}")
        if not get_arch(model).decoder_only:
            raise MethodConfigError(f"{self.name}: Li & Liang's key/value prefix is implemented for decoder-only "
                                    f"models (GPT-2), not model_type {model.config.model_type!r}; encoders take "
                                    "prefix_embed or prefix_layer")
        limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
        if limit and cfg["prefix_len"] >= limit:
            raise MethodConfigError(f"{self.name}: prefix_len={cfg['prefix_len']} leaves no room for text within "
                                    f"the model's {limit} positions")
        if hasattr(base_model(model), "prefix_kv") or hasattr(base_model(model), "prefix_tuning"):
            raise MethodConfigError(f"{self.name}: the model already has a prefix; apply one prefix method")

    @classmethod
    def paper_param_formula(cls, model: nn.Module, cfg: dict) -> int:
        """What trains: l_p·d + (d·m + m) + (m·2Ld + 2Ld) with the MLP (m = mid_dim), else 2·L·d·l_p.
        (Li & Liang count the 2·L·d·l_p numbers they keep after training.)"""
        n_layers, d, l_p, m = len(blocks(model)), int(model.config.hidden_size), cfg["prefix_len"], cfg["mid_dim"]
        if not m:
            return 2 * n_layers * d * l_p
        return l_p * d + d * m + m + m * 2 * n_layers * d + 2 * n_layers * d

    def apply(self, model: nn.Module, cfg: dict) -> None:
        p = next(blocks(model).parameters())
        prefix = PrefixKV(len(blocks(model)), int(model.config.num_attention_heads), int(model.config.hidden_size),
                          cfg["prefix_len"], cfg["mid_dim"]).to(device=p.device, dtype=p.dtype)
        base_model(model).prefix_kv = prefix
        model.forward = types.MethodType(_wrapping(_forward, type(model).forward), model)
        model.generate = types.MethodType(_wrapping(_generate, type(model).generate), model)
