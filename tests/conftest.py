"""Shared fixtures: tiny models built from config (no download), offline everywhere."""
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))  # tools/faults.py

# Tiny models: one thread is faster than two contending ones (and deterministic).
torch.set_num_threads(1)

TINY = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, vocab_size=120,
            max_position_embeddings=64)


def tiny_config(model_type: str):
    from transformers import AutoConfig
    if model_type == "gpt2":
        return AutoConfig.for_model("gpt2", n_embd=32, n_layer=3, n_head=2, vocab_size=120, n_positions=64,
                                    bos_token_id=0, eos_token_id=0)
    if model_type == "deberta-v2":
        return AutoConfig.for_model("deberta-v2", **TINY, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                    position_buckets=8, max_relative_positions=-1, position_biased_input=False,
                                    type_vocab_size=0, pad_token_id=0)
    return AutoConfig.for_model(model_type, **TINY, pad_token_id=1 if model_type == "roberta" else 0)


def tiny_model(model_type: str, seed: int = 0, num_labels: int = 3):
    """A tiny randomly initialised model: encoders with a classification head, GPT-2 as a causal LM."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    torch.manual_seed(seed)
    cfg = tiny_config(model_type)
    if model_type == "gpt2":
        model = AutoModelForCausalLM.from_config(cfg)
    else:
        cfg.num_labels = num_labels
        model = AutoModelForSequenceClassification.from_config(cfg)
    return model.eval()


ARCH_TYPES = ["roberta", "bert", "deberta-v2", "gpt2"]


@pytest.fixture(params=ARCH_TYPES)
def arch_type(request):
    return request.param


def tiny_batch(model_type: str, batch: int = 2, seq: int = 10, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 100, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    mask[0, -3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def randomize_lora(model, seed=0, std=0.5):
    """B is zero at init; give it values so that the LoRA path shows in the outputs."""
    from lora_repro.methods import lora_layers
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in lora_layers(model):
            for b in layer.lora_B.values():
                b.copy_(torch.randn(b.shape, generator=g) * std)
    return model
