"""Damaged or edited adapter files are refused with the file's name, never loaded silently or as a raw
safetensors traceback (review F17-F22, F24, F25, F31-F33)."""
import json
import os

import pytest
import torch

from lora_repro.analysis import AnalysisError, load_run
from lora_repro.analysis.cli import main as analyze
from lora_repro.methods import AdapterLoadError, apply_adapter, apply_method, load_adapter, save_adapter
from lora_repro.methods.io import init_from_adapter
from tests.helpers import BLOCKS, perturb_trainable, randomize_lora, tiny_model

LORA = {"name": "lora", "r": 4, "alpha": 8, "targets": ["q", "v"]}


def saved_lora(path, model_type="roberta", base="tiny-roberta"):
    model = tiny_model(model_type, layers=BLOCKS)
    report = apply_method(model, LORA)
    randomize_lora(model)
    perturb_trainable(model)
    save_adapter(model, path, report, base_model_name=base)
    return path


def fresh():
    model = tiny_model("roberta", layers=BLOCKS)
    apply_method(model, LORA)
    return model


@pytest.mark.parametrize("damage, why", [
    ("half", "not a readable safetensors file"),                 # F17: truncated
    ("empty", "not a readable safetensors file"),                # F18: zero bytes
    ("huge_header", "not a readable safetensors file"),          # F19: header length 1e12
    ("tail", "does not match the checksum saved with it"),       # F20: tensor bytes changed in place
])
def test_damaged_weights_are_refused_naming_the_file(tmp_path, damage, why, capsys):
    weights = saved_lora(tmp_path / "a") / "adapter.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"half": data[:len(data) // 2], "empty": b"",
                         "huge_header": (10**12).to_bytes(8, "little") + data[8:],
                         "tail": data[:-200] + os.urandom(200)}[damage])
    for load in (lambda: load_adapter(fresh(), tmp_path / "a"),
                 lambda: apply_adapter(tiny_model("roberta", layers=BLOCKS), tmp_path / "a")):
        with pytest.raises(AdapterLoadError, match=why) as e:
            load()
        assert str(weights) in str(e.value)
    with pytest.raises(AnalysisError, match=why):                  # F32: the analysis says the same
        load_run(tmp_path / "a")
    assert analyze(["subspace", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "o")]) == 2
    assert str(weights) in capsys.readouterr().err


@pytest.mark.parametrize("edit, says", [
    (lambda c: c.update(alpha=16), "says alpha=16 but .* was trained with alpha=8"),    # F25
    (lambda c: c.update(r=2), "says r=2 but .* was trained with r=4"),                  # F24
    (lambda c: c.pop("alpha"), "says no alpha but .* was trained with alpha=8"),        # F22
])
def test_an_edited_config_is_refused_instead_of_changing_the_scale(tmp_path, edit, says):
    saved_lora(tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    edit(config)
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterLoadError, match=says):
        apply_adapter(tiny_model("roberta", layers=BLOCKS), tmp_path)
    with pytest.raises(AdapterLoadError, match=says):
        load_adapter(fresh(), tmp_path)


def test_a_truncated_config_is_named(tmp_path):                    # F21
    saved_lora(tmp_path)
    path = tmp_path / "adapter_config.json"
    path.write_text(path.read_text()[:20])
    with pytest.raises(AdapterLoadError, match=f"{path} is not readable JSON"):
        apply_adapter(tiny_model("roberta", layers=BLOCKS), tmp_path)


def test_method_init_from_refuses_tensors_that_are_frozen_in_this_run(tmp_path):    # F31
    source = tiny_model("roberta", layers=BLOCKS)
    report = apply_method(source, {"name": "bitfit"})
    save_adapter(source, tmp_path, report)
    target = tiny_model("roberta", layers=BLOCKS)
    apply_method(target, {"name": "adapter_h", "r": 4})
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(AdapterLoadError, match=r"tensors are frozen in this run .*bias"):
        init_from_adapter(target, tmp_path)
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())


def test_subspace_refuses_adapters_of_different_base_models(tmp_path, capsys):       # F33
    saved_lora(tmp_path / "a", base="tiny-roberta")
    saved_lora(tmp_path / "b", base="other-roberta")
    assert analyze(["subspace", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o")]) == 2
    assert "different base models ['tiny-roberta', 'other-roberta']" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
