"""PEFT export: `PeftModel.from_pretrained(base, dir)` reproduces our LoRA model, head included."""
import json

import pytest
import torch
from safetensors.torch import load_file

from lora_repro.methods import apply_method, export_to_peft, lora_layers
from lora_repro.methods.peft_export import peft_factors
from tests.helpers import BLOCKS, assert_close, outputs, perturb_trainable, randomize_lora, tiny_model


def peft_round_trip(tmp_path, model_type, **options):
    from peft import PeftModel
    ours = tiny_model(model_type, layers=BLOCKS)
    apply_method(ours, {"name": "lora", **options})
    randomize_lora(ours)
    perturb_trainable(ours)  # moves A and the task head too
    export_to_peft(ours, tmp_path, base_model_name_or_path=f"tiny-{model_type}")
    loaded = PeftModel.from_pretrained(tiny_model(model_type, layers=BLOCKS), tmp_path).eval()
    expected = outputs(ours, model_type)
    assert (expected - outputs(tiny_model(model_type, layers=BLOCKS), model_type)).abs().max() > 0.1
    assert_close(outputs(loaded, model_type), expected)
    return ours, loaded


@pytest.mark.parametrize("model_type, options", [
    ("roberta", dict(r=4, alpha=8, targets=["q", "v"])),
    ("bert", dict(r=2, alpha=16, targets=["q", "k", "v", "o"])),
    ("deberta-v2", dict(r=4, alpha=8, targets=["q", "v"])),
    ("roberta", dict(r={"q": 2, "o": 3, "ffn_out": 1}, alpha=8, targets=["q", "o", "ffn_out"])),
    ("gpt2", dict(r=4, alpha=8, targets=["q", "v"])),
    ("gpt2", dict(r=2, alpha=4, targets=["q", "k", "v", "o"])),
    ("gpt2", dict(r={"q": 1, "v": 3, "o": 2}, alpha=4, targets=["q", "v", "o"])),
])
def test_peft_reproduces_our_outputs(tmp_path, model_type, options):
    peft_round_trip(tmp_path, model_type, **options)


def test_file_layout_follows_peft(tmp_path):
    ours, _ = peft_round_trip(tmp_path, "roberta", r=4, alpha=8, targets=["q", "v"])
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["task_type"] == "SEQ_CLS"
    assert (config["r"], config["lora_alpha"], config["fan_in_fan_out"]) == (4, 8, False)
    assert config["modules_to_save"] == ["classifier"] and config["base_model_name_or_path"] == "tiny-roberta"
    keys = set(load_file(tmp_path / "adapter_model.safetensors"))
    layer = ours.roberta.encoder.layer[2].attention.self.query
    a = load_file(tmp_path / "adapter_model.safetensors")[
        "base_model.model.roberta.encoder.layer.2.attention.self.query.lora_A.weight"]
    assert torch.equal(a, layer.lora_A["q"])
    assert "base_model.model.classifier.out_proj.weight" in keys
    assert len(keys) == 3 * 2 * 2 + 4  # 3 layers x (query, value) x (A, B) + head dense/out_proj weight/bias


def test_gpt2_fused_slices_become_one_block_structured_pair(tmp_path):
    ours, loaded = peft_round_trip(tmp_path, "gpt2", r=4, alpha=8, targets=["q", "v"])
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    # two slices of rank 4 -> PEFT rank 8 with lora_alpha 16: the same scale alpha/r = 2
    assert (config["r"], config["lora_alpha"], config["fan_in_fan_out"]) == (8, 16, True)
    assert config["task_type"] == "CAUSAL_LM" and config["modules_to_save"] is None
    layer = ours.transformer.h[0].attn.c_attn
    a, b, rank, lora_alpha = peft_factors(layer)
    assert torch.equal(b[32:64], torch.zeros(32, 8))            # k slice untouched
    assert torch.equal(b[:32, 4:], torch.zeros(32, 4)) and torch.equal(b[64:, :4], torch.zeros(32, 4))
    delta = b @ a * lora_alpha / rank
    torch.testing.assert_close(delta[:32], layer.delta_weight("q"))
    torch.testing.assert_close(delta[64:], layer.delta_weight("v"))
    peft_layer = loaded.base_model.model.transformer.h[0].attn.c_attn
    assert peft_layer.scaling["default"] == 2.0


def test_anchored_targets_keep_o_and_ffn_out_apart(tmp_path):
    _, loaded = peft_round_trip(tmp_path, "bert", r=2, targets=["ffn_out"])
    wrapped = {n for n, m in loaded.named_modules() if hasattr(m, "lora_A") and not n.endswith("lora_A")}
    assert wrapped and all(n.endswith(".output.dense") and ".attention." not in n for n in wrapped)


def test_export_refuses_what_peft_lora_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="no LoRA layers"):
        export_to_peft(tiny_model("roberta", layers=BLOCKS), tmp_path, "x")
    model = tiny_model("roberta", layers=BLOCKS)
    apply_method(model, {"name": "lora", "r": 2})
    model.roberta.embeddings.word_embeddings.weight.requires_grad_(True)
    with pytest.raises(ValueError, match="word_embeddings"):
        export_to_peft(model, tmp_path, "x")
    assert lora_layers(model)
