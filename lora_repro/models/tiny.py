"""The one "tiny" shape: width 32, 2 layers, 2 heads, FFN 64 (GPT-2: its own 4 x width = 128).

`conf/model/tiny-*.yaml` put exactly these overrides on a paper architecture (a pinned test fixes the run
ids of runs on them, so they are the reference); `lora-repro bench --tiny` and the tests' tiny models use the
same shape. Callers may shrink the vocabulary further for speed: vocab is not part of the shape.
"""
from __future__ import annotations

from .source import ModelConfigError

_ENCODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)

# model_type -> config overrides. Position counts are the yamls' (RoBERTa: 128 tokens + its pad offset of 2).
TINY_OVERRIDES: dict[str, dict] = {
    "roberta": {**_ENCODER, "max_position_embeddings": 130},
    "deberta-v2": {**_ENCODER, "attention_head_size": 16, "position_buckets": 8, "max_position_embeddings": 128},
    "gpt2": dict(n_embd=32, n_layer=2, n_head=2, n_positions=256, n_ctx=256),
    "bert": dict(_ENCODER),  # no conf file: the tests' fourth architecture (MiniLM's family)
}


def tiny_overrides(model_type: str) -> dict:
    """A copy of the tiny overrides for `model_type`."""
    if model_type not in TINY_OVERRIDES:
        raise ModelConfigError(f"no tiny shape for model_type {model_type!r}; known: {sorted(TINY_OVERRIDES)}")
    return dict(TINY_OVERRIDES[model_type])


def shape(config) -> dict[str, int]:
    """(width, layers, heads, ffn) of a transformers config, whatever the architecture calls them."""
    width = config.hidden_size
    ffn = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * width
    return {"width": width, "layers": config.num_hidden_layers, "heads": config.num_attention_heads, "ffn": ffn}
