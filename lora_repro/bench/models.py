"""The benchmarked models: the paper's architectures from `lora_repro/models/configs`, random init.

Weights do not change speed or memory, so no download is needed. `tiny=True` shrinks the same architecture
(2 layers, width 64) so that the whole benchmark runs on a CPU in seconds; shapes are then not the paper's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..paths import MODEL_CONFIGS_DIR as CONFIGS
MODELS = ("gpt2-medium", "gpt2-large", "roberta-base", "roberta-large", "deberta-v2-xxlarge")
TINY = {
    "gpt2": dict(n_embd=64, n_layer=2, n_head=2, vocab_size=512, n_positions=256),
    "roberta": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                    vocab_size=512, max_position_embeddings=258),
    "deberta-v2": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                       vocab_size=512, max_position_embeddings=256),
}


@dataclass(frozen=True)
class Preset:
    """A training benchmark setting: the paper's batch size and sequence length for the model."""
    model: str
    batch: int
    seq: int


# GPT-2 M/L on E2E: batch 8, length 512 (Table 11); RoBERTa on GLUE: batch 16 (large) / 32 (base) at 128 (Table 9).
PRESETS = {
    "gpt2-medium": Preset("gpt2-medium", 8, 512),
    "gpt2-large": Preset("gpt2-large", 8, 512),
    "roberta-large": Preset("roberta-large", 16, 128),
    "roberta-base": Preset("roberta-base", 32, 128),
    "deberta-v2-xxlarge": Preset("deberta-v2-xxlarge", 8, 128),  # GLUE batch 8 (Table 10), lengths 64-320
}
TINY_SHAPE = (2, 32)  # batch, seq for --tiny


def check_model(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"model {name!r} has no config here; valid models: {', '.join(MODELS)}")


def load_config(name: str, tiny: bool = False, attn_implementation: str | None = "sdpa"):
    """The transformers config of a paper model (optionally shrunk), dropout off (it only adds noise here)."""
    from transformers import AutoConfig
    check_model(name)
    values = json.loads((CONFIGS / f"{name}.json").read_text())
    model_type = values.pop("model_type")
    values.pop("architectures", None)
    if tiny:
        values.update(TINY[model_type])
    config = AutoConfig.for_model(model_type, **values)
    if model_type == "gpt2":
        config.attn_pdrop = config.embd_pdrop = config.resid_pdrop = 0.0
    else:
        config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
        config.num_labels = 2
    if attn_implementation:
        config._attn_implementation = attn_implementation
    return config


def build_model(name: str, tiny: bool = False, device: str | torch.device = "cpu", seed: int = 0,
                attn_implementation: str = "sdpa") -> nn.Module:
    """GPT-2 as a causal LM (E2E), encoders as 2-label sequence classifiers (GLUE); built on `device` directly."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    config = load_config(name, tiny, attn_implementation)
    torch.manual_seed(seed)
    cls = AutoModelForCausalLM if config.model_type == "gpt2" else AutoModelForSequenceClassification
    with torch.device(device):
        model = cls.from_config(config, attn_implementation=attn_implementation)
    return model


def meta_model(name: str, tiny: bool = False) -> nn.Module:
    """The architecture on the meta device: parameter counts without memory or time."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    config = load_config(name, tiny, None)
    cls = AutoModelForCausalLM if config.model_type == "gpt2" else AutoModelForSequenceClassification
    with torch.device("meta"):
        return cls.from_config(config)


def random_batch(model: nn.Module, batch: int, seq: int, device: str | torch.device, seed: int = 0) -> dict:
    """Token ids in the vocabulary, a full attention mask, and the labels the model's loss needs."""
    g = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    ids = torch.randint(5, vocab, (batch, seq), generator=g)
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if model.config.model_type == "gpt2":
        out["labels"] = ids.clone()
    else:
        out["labels"] = torch.randint(0, model.config.num_labels, (batch,), generator=g)
    return {k: v.to(device) for k, v in out.items()}
