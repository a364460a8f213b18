"""Adapter-only checkpoints: trainable tensors by state-dict key + config, for every method."""
import json

import pytest
import torch
from safetensors.torch import load_file

from lora_repro.methods import (
    AdapterLoadError,
    apply_adapter,
    apply_method,
    load_adapter,
    load_adapter_config,
    merge_lora,
    save_adapter,
)
from lora_repro.methods.arch import is_head_param
from tests.helpers import BLOCKS, outputs, perturb_trainable, randomize_lora, tiny_model


@pytest.mark.parametrize("model_type, cfg", [
    ("roberta", {"name": "lora", "r": 4, "alpha": 8, "targets": ["q", "v"]}),
    ("gpt2", {"name": "lora", "r": {"q": 2, "v": 3}, "alpha": 4, "targets": ["q", "v"]}),
    ("deberta-v2", {"name": "bitfit"}),
    ("gpt2", {"name": "bitfit"}),
])
def test_round_trip(tmp_path, model_type, cfg):
    model = tiny_model(model_type, layers=BLOCKS)
    report = apply_method(model, cfg)
    randomize_lora(model)
    perturb_trainable(model)
    expected = outputs(model, model_type)
    save_adapter(model, tmp_path, report.config, base_model_name="tiny")

    saved = load_file(tmp_path / "adapter.safetensors")
    assert set(saved) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert sum(t.numel() for t in saved.values()) == report.params.trainable < report.params.total
    config = load_adapter_config(tmp_path)
    assert config == {**report.config, "base_model": "tiny"}
    assert json.loads((tmp_path / "adapter_config.json").read_text()) == config

    fresh = tiny_model(model_type, layers=BLOCKS)
    torch.manual_seed(123)  # a different LoRA init, so only the load can make the outputs equal
    apply_method(fresh, cfg)
    assert not torch.equal(outputs(fresh, model_type), expected)
    assert load_adapter(fresh, tmp_path) == config
    assert torch.equal(outputs(fresh, model_type), expected)

    again = tiny_model(model_type, layers=BLOCKS)
    assert apply_adapter(again, tmp_path).config == report.config
    assert torch.equal(outputs(again, model_type), expected)
    save_adapter(again, tmp_path / "again", config, base_model_name="tiny")  # a loaded config saves as is
    assert load_adapter_config(tmp_path / "again") == config


def test_head_is_saved_and_file_is_small(tmp_path):
    model = tiny_model("roberta", layers=BLOCKS)
    report = apply_method(model, {"name": "lora", "r": 2})
    save_adapter(model, tmp_path, report)
    saved = load_file(tmp_path / "adapter.safetensors")
    assert any(is_head_param(model, k) for k in saved)
    full = sum(p.numel() for p in model.parameters())
    assert (tmp_path / "adapter.safetensors").stat().st_size < 4 * full / 5


def test_wrong_config_is_a_clear_error(tmp_path):
    model = tiny_model("bert", layers=BLOCKS)
    apply_method(model, {"name": "lora", "r": 4})
    save_adapter(model, tmp_path, {"name": "lora", "r": 4})

    other_rank = tiny_model("bert", layers=BLOCKS)
    apply_method(other_rank, {"name": "lora", "r": 2})
    with pytest.raises(AdapterLoadError, match=r"wrong shape: \['bert.encoder.layer.0.attention.self.query.lora_A.q: "
                                               r"saved \(4, 32\), model \(2, 32\)"):
        load_adapter(other_rank, tmp_path)

    other_targets = tiny_model("bert", layers=BLOCKS)
    apply_method(other_targets, {"name": "lora", "r": 4, "targets": ["q", "k"]})
    before = {k: v.clone() for k, v in other_targets.state_dict().items()}
    with pytest.raises(AdapterLoadError, match=r"missing 6 .*lora_A\.k.*unexpected 6 .*lora_A\.v"):
        load_adapter(other_targets, tmp_path)
    assert all(torch.equal(v, before[k]) for k, v in other_targets.state_dict().items())

    other_alpha = tiny_model("bert", layers=BLOCKS)
    apply_method(other_alpha, {"name": "lora", "r": 4, "alpha": 16})
    with pytest.raises(AdapterLoadError, match=r"has alpha=8; the model's LoRA layers have alpha=\[16\]"):
        load_adapter(other_alpha, tmp_path)

    with pytest.raises(AdapterLoadError, match="missing"):
        load_adapter(tiny_model("bert", layers=BLOCKS), tmp_path)  # apply_method was not called: only the head trains
    with pytest.raises(AdapterLoadError, match="no adapter_config.json"):
        load_adapter(model, tmp_path / "nowhere")


def test_loading_into_merged_model_is_an_error(tmp_path):
    model = tiny_model("gpt2", layers=BLOCKS)
    report = apply_method(model, {"name": "lora", "r": 2})
    save_adapter(model, tmp_path, report)
    merge_lora(model)
    with pytest.raises(AdapterLoadError, match="unmerge_lora"):
        load_adapter(model, tmp_path)
