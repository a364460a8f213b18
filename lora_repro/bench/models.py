"""The benchmarked models: the paper's architectures from `lora_repro/models/configs`, random init.

Weights do not change speed or memory, so no download is needed. Models are made by `lora_repro.models.build`
(its head rule: GPT-2 a causal LM for E2E, encoders 2-label sequence classifiers for GLUE). `tiny=True` takes
the project's one tiny shape (`lora_repro.models.TINY_OVERRIDES`) with a 512-token vocabulary, so that the
whole benchmark runs on a CPU in seconds; shapes are then not the paper's. Bench's own choice: dropout off.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..models import arch_config, build, is_decoder_only

MODELS = ("gpt2-medium", "gpt2-large", "roberta-base", "roberta-large", "deberta-v2-xxlarge")
TINY_VOCAB = 512  # --tiny: a small vocabulary keeps embeddings and the LM head from dominating the tiny shape
DROPOUT_KEYS = ("attn_pdrop", "embd_pdrop", "resid_pdrop", "hidden_dropout_prob", "attention_probs_dropout_prob")
NUM_LABELS = 2


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
    """The transformers config of a paper model (optionally tiny), dropout off (it only adds noise here)."""
    check_model(name)
    config = arch_config(name, tiny=tiny, overrides={"vocab_size": TINY_VOCAB} if tiny else None)
    for key in DROPOUT_KEYS:
        if hasattr(config, key):
            setattr(config, key, 0.0)
    if attn_implementation:
        config._attn_implementation = attn_implementation
    return config


def build_model(name: str, tiny: bool = False, device: str | torch.device = "cpu", seed: int = 0,
                attn_implementation: str = "sdpa") -> nn.Module:
    """The benchmarked model, built on `device` directly from torch's RNG seeded with `seed`."""
    config = load_config(name, tiny, attn_implementation)
    torch.manual_seed(seed)
    return build(config, num_labels=NUM_LABELS, device=device, attn_implementation=attn_implementation)


def meta_model(name: str, tiny: bool = False) -> nn.Module:
    """The architecture on the meta device: parameter counts without memory or time."""
    return build(load_config(name, tiny, None), num_labels=NUM_LABELS, device="meta")


def random_batch(model: nn.Module, batch: int, seq: int, device: str | torch.device, seed: int = 0) -> dict:
    """Token ids in the vocabulary, a full attention mask, and the labels the model's loss needs."""
    g = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    ids = torch.randint(5, vocab, (batch, seq), generator=g)
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if is_decoder_only(model.config):
        out["labels"] = ids.clone()
    else:
        out["labels"] = torch.randint(0, model.config.num_labels, (batch,), generator=g)
    return {k: v.to(device) for k, v in out.items()}
