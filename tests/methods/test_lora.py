"""LoRA layers and method: init equals base, trainable set, oracles (peft, loralib), merge, plain export, errors."""
import copy

import loralib
import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
from transformers.pytorch_utils import Conv1D

from lora_repro.methods import (
    LoRALayer,
    MethodConfigError,
    apply_method,
    lora_layers,
    lora_to_plain,
    merge_lora,
    merged_copy,
    unmerge_lora,
)
from lora_repro.methods.arch import blocks, is_head_param
from tests.helpers import BLOCKS, assert_close, outputs, randomize_lora, tiny_batch, tiny_model

ENCODERS = ["roberta", "bert", "deberta-v2"]
PEFT_NAMES = {"roberta": ["query", "value"], "bert": ["query", "value"], "deberta-v2": ["query_proj", "value_proj"]}


def lora_model(model_type, **options):
    model = tiny_model(model_type, layers=BLOCKS)
    report = apply_method(model, {"name": "lora", **options})
    return model, report


# --- method and layers --------------------------------------------------------------------------------------

def test_defaults_and_registration():
    model, report = lora_model("roberta")
    assert report.config == {"name": "lora", "r": 8, "alpha": 8, "dropout": 0.0, "targets": ["q", "v"],
                             "init_a": "kaiming"}
    layer = model.roberta.encoder.layer[0].attention.self.query
    assert isinstance(layer, LoRALayer) and layer.scaling == {"q": 1.0} and isinstance(layer.dropout, nn.Identity)


def test_init_a_normal_is_the_authors_deberta_init():
    """The authors' DeBERTa _init_weights re-draws lora_A ~ N(0, initializer_range); B stays zero (review D12)."""
    model = tiny_model("deberta-v2", layers=BLOCKS)
    model.config.initializer_range = 0.5
    apply_method(model, {"name": "lora", "r": 16, "targets": ["q", "v"], "init_a": "normal"})
    a = torch.cat([a.detach().flatten() for _, layer in lora_layers(model) for a in layer.lora_A.values()])
    assert float(a.std()) == pytest.approx(0.5, rel=0.1) and float(a.abs().max()) > 1.0  # not the uniform bound
    assert all(not b.any() for _, layer in lora_layers(model) for b in layer.lora_B.values())
    with pytest.raises(MethodConfigError, match=r"init_a='xavier'.*kaiming.*normal"):
        apply_method(tiny_model("roberta"), {"name": "lora", "init_a": "xavier"})


def test_init_output_equals_base_exactly(arch_type):
    base = outputs(tiny_model(arch_type, layers=BLOCKS), arch_type)
    model, _ = lora_model(arch_type, r=4, alpha=16, targets=["q", "k", "v", "o"])
    assert torch.equal(outputs(model, arch_type), base)
    assert all(not b.any() for _, layer in lora_layers(model) for b in layer.lora_B.values())
    assert all(a.abs().min() > 0 for _, layer in lora_layers(model) for a in layer.lora_A.values())


def test_wraps_the_base_layer_without_copying(arch_type):
    model = tiny_model(arch_type, layers=BLOCKS)
    site = "attn.c_attn" if arch_type == "gpt2" else ("attention.self.query_proj" if arch_type == "deberta-v2"
                                                      else "attention.self.query")
    original = blocks(model)[1].get_submodule(site)
    apply_method(model, {"name": "lora", "r": 2})
    assert blocks(model)[1].get_submodule(site).base_layer is original


def test_parameter_names_and_shapes(arch_type):
    model, report = lora_model(arch_type, r=2, targets=["q", "v", "o"])
    sd = model.state_dict()
    d = 32
    if arch_type == "gpt2":
        for t in ("q", "v"):
            assert sd[f"transformer.h.1.attn.c_attn.lora_A.{t}"].shape == (2, d)
            assert sd[f"transformer.h.1.attn.c_attn.lora_B.{t}"].shape == (d, 2)
        assert "transformer.h.1.attn.c_attn.lora_A.k" not in sd
        assert sd["transformer.h.1.attn.c_proj.lora_B.o"].shape == (d, 2)
    else:
        prefix = f"{model.base_model_prefix}.encoder.layer.1.attention"
        q = "self.query_proj" if arch_type == "deberta-v2" else "self.query"
        assert sd[f"{prefix}.{q}.lora_A.q"].shape == (2, d) and sd[f"{prefix}.{q}.lora_B.q"].shape == (d, 2)
        assert sd[f"{prefix}.output.dense.lora_A.o"].shape == (2, d)
    # 3 targets x 3 layers x (A + B) = 3 * 3 * 2 * (2 * 32)
    assert report.params.trainable_paper == 3 * 3 * 2 * 2 * d


def test_per_target_rank():
    model, report = lora_model("gpt2", r={"q": 1, "v": 3}, alpha=6)
    layer = model.transformer.h[0].attn.c_attn
    assert layer.lora_A["q"].shape == (1, 32) and layer.lora_A["v"].shape == (3, 32)
    assert layer.scaling == {"q": 6.0, "v": 2.0}
    assert report.params.trainable_paper == 3 * (1 + 3) * 2 * 32


def test_only_lora_and_head_train_and_get_gradients(arch_type):
    model, _ = lora_model(arch_type, r=2, targets=["q", "v"])
    model.train()
    lora_names = {f"{n}.{kind}.{t}"
                  for n, layer in lora_layers(model) for kind in ("lora_A", "lora_B") for t in layer.slices}
    for name, p in model.named_parameters():
        assert p.requires_grad == (name in lora_names or is_head_param(model, name)), name
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = tiny_batch(arch_type)
    torch.manual_seed(0)
    out = model(**batch, labels=batch["input_ids"] if arch_type == "gpt2" else torch.tensor([0, 2]))
    out.loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
    assert all(float(layer.lora_B[t].grad.abs().sum()) > 0 for _, layer in lora_layers(model) for t in layer.slices)
    torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2).step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and changed <= {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(f"{n}.lora_B.{t}" in changed for n, layer in lora_layers(model) for t in layer.slices)


def test_dropout_only_on_the_lora_path():
    torch.manual_seed(0)
    layer = LoRALayer(nn.Linear(8, 8), {"q": slice(0, 8)}, {"q": 2}, alpha=2, dropout=0.5)
    randomize_lora(layer)
    x = torch.randn(4, 8)
    assert isinstance(layer.dropout, nn.Dropout)
    layer.train()
    assert not torch.equal(layer(x), layer(x))
    layer.eval()
    assert torch.equal(layer(x), layer(x))


def test_fused_slices_leave_k_alone_and_match_hand_computed_delta():
    torch.manual_seed(0)
    base = Conv1D(24, 8)                       # nf=24 (q|k|v of width 8), nx=8: weight [8, 24]
    layer = LoRALayer(base, {"q": slice(0, 8), "v": slice(16, 24)}, {"q": 2, "v": 2}, alpha=4)
    randomize_lora(layer)
    x = torch.randn(3, 5, 8)
    delta = torch.zeros(24, 8)                 # nn.Linear orientation
    delta[0:8] = layer.lora_B["q"] @ layer.lora_A["q"] * 2
    delta[16:24] = layer.lora_B["v"] @ layer.lora_A["v"] * 2
    with torch.no_grad():
        expected = x @ (base.weight + delta.T) + base.bias
        got = layer(x)
    assert_close(got, expected)
    assert torch.equal(got[..., 8:16], base(x)[..., 8:16])


# --- oracles -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model_type", ENCODERS)
def test_matches_peft_lora(model_type):
    from peft import LoraConfig, get_peft_model
    ours, _ = lora_model(model_type, r=4, alpha=8, targets=["q", "v"])
    randomize_lora(ours)
    peft_model = get_peft_model(tiny_model(model_type, layers=BLOCKS),
                                LoraConfig(r=4, lora_alpha=8, target_modules=PEFT_NAMES[model_type])).eval()
    with torch.no_grad():
        for name, layer in lora_layers(ours):
            (t,) = layer.slices
            target = peft_model.base_model.model.get_submodule(name)
            target.lora_A["default"].weight.copy_(layer.lora_A[t])
            target.lora_B["default"].weight.copy_(layer.lora_B[t])
    expected, base = outputs(peft_model, model_type), outputs(tiny_model(model_type, layers=BLOCKS), model_type)
    assert (expected - base).abs().max() > 0.1  # the LoRA path shows, so the comparison means something
    assert_close(outputs(ours, model_type), expected)


@pytest.mark.parametrize("model_type", ENCODERS)
def test_matches_loralib_linear(model_type):
    ours, _ = lora_model(model_type, r=4, alpha=8, targets=["q", "v"])
    randomize_lora(ours)
    ref = tiny_model(model_type, layers=BLOCKS)
    with torch.no_grad():
        for name, layer in lora_layers(ours):
            (t,) = layer.slices
            base = layer.base_layer
            lin = loralib.Linear(base.in_features, base.out_features, r=4, lora_alpha=8, merge_weights=False)
            lin.weight.copy_(base.weight), lin.bias.copy_(base.bias)
            lin.lora_A.copy_(layer.lora_A[t]), lin.lora_B.copy_(layer.lora_B[t])
            parent, _, child = name.rpartition(".")
            setattr(ref.get_submodule(parent), child, lin)
    assert_close(outputs(ours, model_type), outputs(ref.eval(), model_type))


def test_gpt2_matches_loralib_merged_linear():
    """The paper's own GPT-2 code: MergedLinear(enable_lora=[True, False, True], fan_in_fan_out=True)."""
    ours, _ = lora_model("gpt2", r=4, alpha=8, targets=["q", "v"])
    randomize_lora(ours)
    ref = tiny_model("gpt2", layers=BLOCKS)
    with torch.no_grad():
        for block, ref_block in zip(ours.transformer.h, ref.transformer.h):
            layer = block.attn.c_attn
            merged = loralib.MergedLinear(32, 96, r=4, lora_alpha=8, enable_lora=[True, False, True],
                                          fan_in_fan_out=True, merge_weights=False)
            merged.weight.copy_(layer.base_layer.weight), merged.bias.copy_(layer.base_layer.bias)
            merged.lora_A.copy_(torch.cat([layer.lora_A["q"], layer.lora_A["v"]]))
            merged.lora_B.copy_(torch.cat([layer.lora_B["q"], layer.lora_B["v"]]))
            ref_block.attn.c_attn = merged
    expected = outputs(ref.eval(), "gpt2")
    assert (expected - outputs(tiny_model("gpt2", layers=BLOCKS), "gpt2")).abs().max() > 0.1
    assert_close(outputs(ours, "gpt2"), expected)


# --- merge, plain export -------------------------------------------------------------------------------------

def test_merge_unmerge_round_trip_and_idempotent(arch_type):
    model, _ = lora_model(arch_type, r=4, alpha=8, targets=["q", "k", "v", "o"])
    randomize_lora(model)
    base_weights = {n: layer.base_layer.weight.detach().clone() for n, layer in lora_layers(model)}
    unmerged = outputs(model, arch_type)
    merge_lora(model)
    once = {n: layer.base_layer.weight.detach().clone() for n, layer in lora_layers(model)}
    merge_lora(model)
    assert all(layer.merged and torch.equal(layer.base_layer.weight, once[n]) for n, layer in lora_layers(model))
    assert_close(outputs(model, arch_type), unmerged)
    unmerge_lora(model)
    unmerge_lora(model)
    for n, layer in lora_layers(model):
        assert not layer.merged
        torch.testing.assert_close(layer.base_layer.weight, base_weights[n], rtol=0, atol=1e-6)
    assert_close(outputs(model, arch_type), unmerged)


def test_merged_forward_is_the_base_layer_alone(arch_type):
    model, _ = lora_model(arch_type, r=2)
    randomize_lora(model)
    expected = outputs(model, arch_type)
    merge_lora(model)
    with torch.no_grad():  # poison the factors: a merged forward must not read them
        for _, layer in lora_layers(model):
            for p in [*layer.lora_A.values(), *layer.lora_B.values()]:
                p.fill_(float("nan"))
    assert_close(outputs(model, arch_type), expected)


def test_training_a_merged_model_is_an_error():
    model, _ = lora_model("roberta", r=2)
    merge_lora(model).train()
    with pytest.raises(RuntimeError, match="unmerge_lora"):
        model(**tiny_batch("roberta"))


def test_plain_export_is_a_transformers_model(arch_type, tmp_path):
    model, _ = lora_model(arch_type, r=4, alpha=8, targets=["q", "v", "o"])
    randomize_lora(model)
    expected = outputs(model, arch_type)
    plain = merged_copy(model)
    assert all(not layer.merged for _, layer in lora_layers(model))  # the LoRA model itself is untouched
    assert not lora_layers(plain)
    wrapped = {n for n, _ in lora_layers(model)}
    kind = Conv1D if arch_type == "gpt2" else nn.Linear
    assert all(type(plain.get_submodule(n)) is kind for n in wrapped)
    assert not any("lora" in k or "base_layer" in k for k in plain.state_dict())
    assert_close(outputs(plain, arch_type), expected)
    plain.save_pretrained(tmp_path)
    auto = AutoModelForCausalLM if arch_type == "gpt2" else AutoModelForSequenceClassification
    reloaded = auto.from_pretrained(tmp_path).eval()
    assert_close(outputs(reloaded, arch_type), expected)
    assert lora_to_plain(model) is model and not lora_layers(model)


# --- bad input: a clear error before anything changes ---------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"r": 0}, r"r=0 must be an integer > 0"),
    ({"r": -2}, r"r=-2 must be an integer > 0"),
    ({"r": 2.5}, r"r=2.5 must be an integer"),
    ({"r": True}, r"r=True must be an integer"),
    ({"r": {"q": 2}}, r"r=\{'q': 2\} must give a rank for exactly the targets \['q', 'v'\]"),
    ({"r": {"q": 2, "v": 0}}, r"r=\{'v': 0\} must be integers > 0"),
    ({"alpha": 0}, r"alpha=0 must be a number > 0"),
    ({"alpha": -8}, r"alpha=-8 must be a number > 0"),
    ({"alpha": float("nan")}, r"alpha=nan must be a number > 0"),
    ({"dropout": 1.0}, r"dropout=1.0 must be a number in \[0, 1\)"),
    ({"dropout": -0.1}, r"dropout=-0.1 must be a number in \[0, 1\)"),
    ({"targets": ["q", "x"]}, r"target 'x' is not in model_type '[\w-]+'; valid targets: q, k, v, o"),
    ({"targets": []}, r"targets=\[\] must be a non-empty list"),
    ({"targets": "q"}, r"targets='q' must be a non-empty list"),
    ({"targets": ["q", "q"]}, r"targets=\['q', 'q'\] lists a target twice"),
])
@pytest.mark.parametrize("model_type", ["roberta", "gpt2"])
def test_bad_options_fail_before_any_change(model_type, options, message):
    model = tiny_model(model_type, layers=BLOCKS)
    before = copy.deepcopy(model.state_dict())
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modules = [type(m) for m in model.modules()]
    with pytest.raises(MethodConfigError, match=f"^lora: {message}"):
        apply_method(model, {"name": "lora", **options})
    assert [type(m) for m in model.modules()] == modules
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_gpt2_error_message_names_model_type_and_choices():
    with pytest.raises(MethodConfigError) as err:
        apply_method(tiny_model("gpt2", layers=BLOCKS), {"name": "lora", "targets": ["x"]})
    assert str(err.value) == ("lora: target 'x' is not in model_type 'gpt2'; "
                              "valid targets: q, k, v, o, ffn_in, ffn_out")


def test_applying_twice_is_an_error():
    model, _ = lora_model("bert", r=2)
    with pytest.raises(MethodConfigError, match="already has LoRA layers"):
        apply_method(model, {"name": "lora"})
