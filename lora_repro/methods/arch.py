"""Where each architecture keeps the matrices the paper talks about.

The paper names weights canonically: W_q, W_k, W_v, W_o of self-attention, and the FFN. Each
Hugging Face architecture stores them under its own module names, and GPT-2 fuses q, k, v into
one Conv1D (`c_attn`, weight of shape [d, 3d]). This module is the one place that knows those
names, so that every method speaks only of `q k v o ffn_in ffn_out` and of layers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from torch import nn

CANONICAL_TARGETS = ("q", "k", "v", "o")


@dataclass(frozen=True)
class Site:
    """One canonical weight inside a block: the module path relative to the block and, for a fused
    projection, which of its equal output chunks is meant (index, number of chunks)."""
    path: str
    chunk: tuple[int, int] | None = None


@dataclass(frozen=True)
class Arch:
    model_types: tuple[str, ...]
    layers: str                 # path of the ModuleList of blocks, relative to the base model
    sites: dict[str, Site]      # canonical name -> where it lives in a block
    attn_out: str               # output projection of self-attention (adapters go after it)
    ffn_out: str                # output projection of the FFN (adapters go after it)
    embeddings: str             # token-embedding module, relative to the base model
    decoder_only: bool = False
    attn_out_dropout: str = ""  # the dropout right after attn_out / ffn_out (the authors' Houlsby adapters follow it)
    ffn_out_dropout: str = ""
    ffn_output: str = ""        # post-LN blocks: the module computing LayerNorm(dropout(ffn_out(h)) + x) (Pfeiffer)
    extra: dict[str, str] = field(default_factory=dict)


_BERT_LIKE = dict(
    layers="encoder.layer",
    sites={"q": Site("attention.self.query"), "k": Site("attention.self.key"),
           "v": Site("attention.self.value"), "o": Site("attention.output.dense"),
           "ffn_in": Site("intermediate.dense"), "ffn_out": Site("output.dense")},
    attn_out="attention.output.dense", ffn_out="output.dense", embeddings="embeddings.word_embeddings",
    attn_out_dropout="attention.output.dropout", ffn_out_dropout="output.dropout", ffn_output="output",
)

ARCHS: dict[str, Arch] = {}
for _arch in (
    Arch(model_types=("bert", "roberta"), **_BERT_LIKE),
    Arch(model_types=("deberta-v2",), layers="encoder.layer",
         sites={"q": Site("attention.self.query_proj"), "k": Site("attention.self.key_proj"),
                "v": Site("attention.self.value_proj"), "o": Site("attention.output.dense"),
                "ffn_in": Site("intermediate.dense"), "ffn_out": Site("output.dense")},
         attn_out="attention.output.dense", ffn_out="output.dense",
         embeddings="embeddings.word_embeddings", attn_out_dropout="attention.output.dropout",
         ffn_out_dropout="output.dropout", ffn_output="output"),
    Arch(model_types=("gpt2",), layers="h",
         sites={"q": Site("attn.c_attn", (0, 3)), "k": Site("attn.c_attn", (1, 3)),
                "v": Site("attn.c_attn", (2, 3)), "o": Site("attn.c_proj"),
                "ffn_in": Site("mlp.c_fc"), "ffn_out": Site("mlp.c_proj")},
         attn_out="attn.c_proj", ffn_out="mlp.c_proj", embeddings="wte", decoder_only=True,
         attn_out_dropout="attn.resid_dropout", ffn_out_dropout="mlp.dropout"),
):
    for _mt in _arch.model_types:
        ARCHS[_mt] = _arch


class UnsupportedModelError(ValueError):
    pass


def get_arch(model: nn.Module) -> Arch:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ARCHS:
        raise UnsupportedModelError(
            f"model_type {model_type!r} is not supported; supported model types: {sorted(ARCHS)}")
    return ARCHS[model_type]


def base_model(model: nn.Module) -> nn.Module:
    """The transformer body (`model.roberta`, `model.transformer`, ...) without any task head."""
    return getattr(model, "base_model", model)


def base_prefix(model: nn.Module) -> str:
    """Parameter-name prefix of the body; every parameter outside it belongs to a task head."""
    prefix = getattr(model, "base_model_prefix", "")
    return f"{prefix}." if prefix and hasattr(model, prefix) else ""


def blocks(model: nn.Module) -> nn.ModuleList:
    return base_model(model).get_submodule(get_arch(model).layers)


def available_sites(model: nn.Module) -> list[str]:
    """Canonical names this architecture has (what `targets` may contain)."""
    return list(get_arch(model).sites)


def is_head_param(model: nn.Module, name: str) -> bool:
    """True for a task head's parameter (trained by every method, left out of the paper's counts)."""
    prefix = base_prefix(model)
    return bool(prefix) and not name.startswith(prefix)


def layer_of(module_path: str, model_type: str | None = None) -> int | None:
    """The block index in a module path or state-dict key (`roberta.encoder.layer.3.attention...` -> 3), or None.

    With `model_type`, only that architecture's `layers` path counts. Without it (an adapter on disk does not
    record its model type) the last name of any supported architecture's `layers` path does (`layer.N`, `h.N`).
    """
    if model_type is not None:
        if model_type not in ARCHS:
            raise UnsupportedModelError(
                f"model_type {model_type!r} is not supported; supported model types: {sorted(ARCHS)}")
        names = [ARCHS[model_type].layers]
    else:
        names = sorted({a.layers.rsplit(".", 1)[-1] for a in ARCHS.values()})
    m = re.search(r"(?:^|\.)(?:" + "|".join(map(re.escape, names)) + r")\.(\d+)(?:\.|$)", module_path)
    return int(m.group(1)) if m else None
