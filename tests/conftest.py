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

TEST_VOCAB = 120  # smaller than any real tokenizer: fast tests; vocab is not part of the tiny shape
TEST_POSITIONS = 64  # nor are positions: tests of prefix lengths pin "no room" at 64
# Stop-gap, the one deviation from the shared shape: tests of ft_top2, adapter_d and prefixes pin counts and
# block indices for 3 blocks (test_adapters, test_lora, test_prefix, ...). Delete once those files use 2; the
# strict xfail in tests/test_models_tiny.py fails as soon as this equals the shared layer count.
TEST_LAYERS = 3
_LAYER_KEY = {"gpt2": "n_layer"}
_POSITION_KEYS = {"gpt2": ("n_positions", "n_ctx")}


def tiny_config(model_type: str):
    """The project's one tiny shape (lora_repro.models.TINY_OVERRIDES, as conf/model/tiny-*.yaml) on
    transformers' defaults for `model_type`, with the tests' small vocabulary."""
    from transformers import AutoConfig

    from lora_repro.models import tiny_overrides
    shape = {**tiny_overrides(model_type), _LAYER_KEY.get(model_type, "num_hidden_layers"): TEST_LAYERS,
             **dict.fromkeys(_POSITION_KEYS.get(model_type, ("max_position_embeddings",)), TEST_POSITIONS)}
    if model_type == "gpt2":
        return AutoConfig.for_model("gpt2", **shape, vocab_size=TEST_VOCAB, bos_token_id=0, eos_token_id=0)
    if model_type == "deberta-v2":
        return AutoConfig.for_model("deberta-v2", **shape, vocab_size=TEST_VOCAB, relative_attention=True,
                                    pos_att_type=["p2c", "c2p"], max_relative_positions=-1,
                                    position_biased_input=False, type_vocab_size=0, pad_token_id=0)
    return AutoConfig.for_model(model_type, **shape, vocab_size=TEST_VOCAB,
                                pad_token_id=1 if model_type == "roberta" else 0)


def tiny_model(model_type: str, seed: int = 0, num_labels: int = 3):
    """A tiny randomly initialised model, head by the project's one rule (lora_repro.models.build)."""
    from lora_repro.models import build
    torch.manual_seed(seed)
    return build(tiny_config(model_type), num_labels=num_labels).eval()


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
