"""LoRA's successors that PEFT implements (DoRA, rsLoRA, PiSSA, LoRA+): our outputs and gradients equal PEFT's, and
`export_peft` round-trips each through `PeftModel.from_pretrained`.

Tolerances: outputs within 1e-5 of their scale (fp32; the two compute the same maths in a different order),
gradients within 1e-4 relative (fp32 backward through two blocks)."""
import pytest
import torch

from lora_repro.methods import apply_method, capabilities, get_method, lora_layers, merge_lora, unmerge_lora
from lora_repro.train.optim import make_optimizer
from tests.helpers import BLOCKS, assert_close, outputs, perturb_trainable, randomize_lora, tiny_batch, tiny_model


def _ours(model_type, method, **options):
    model = tiny_model(model_type, layers=BLOCKS)
    apply_method(model, {"name": method, **options})
    randomize_lora(model)
    perturb_trainable(model)   # moves A, the magnitude and the head too
    return model


def _exported(tmp_path, ours, model_type):
    from peft import PeftModel
    get_method(_name(ours)).export_peft(ours, tmp_path, f"tiny-{model_type}")
    return PeftModel.from_pretrained(tiny_model(model_type, layers=BLOCKS), tmp_path, is_trainable=True).eval()


def _name(model):
    return model._method_name


def _loss(model, model_type):
    out = model(**tiny_batch(model_type), output_hidden_states=True)
    return out.logits.pow(2).sum() + out.hidden_states[-1].pow(2).mean()


def _grads(model, model_type):
    model.zero_grad()
    _loss(model, model_type).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def _peft_name(ours_name):
    """Our key -> PEFT's: `<m>.lora_A.q` -> `base_model.model.<m>.lora_A.default.weight`, magnitude likewise."""
    module, kind, _target = ours_name.rsplit(".", 2)
    kind = {"lora_magnitude": "lora_magnitude_vector"}.get(kind, kind)
    return f"base_model.model.{module}.{kind}.default.weight"


def _pair(model_type, method, tmp_path, **options):
    ours = _ours(model_type, method, **options)
    ours._method_name = method
    theirs = _exported(tmp_path, ours, model_type)
    return ours, theirs


@pytest.mark.parametrize("method, model_type, options", [
    ("dora", "roberta", dict(r=4, alpha=8, targets=["q", "v"])),
    ("dora", "bert", dict(r=2, alpha=16, targets=["q", "k", "v", "o", "ffn_in", "ffn_out"])),
    ("rslora", "roberta", dict(r=4, alpha=8, targets=["q", "v"])),
    ("rslora", "deberta-v2", dict(r=4, alpha=8, targets=["q", "v", "o"])),
    ("pissa", "roberta", dict(r=4, alpha=8, targets=["q", "v"])),      # PEFT recomputes the residual on load
])
def test_outputs_and_gradients_equal_peft(tmp_path, method, model_type, options):
    ours, theirs = _pair(model_type, method, tmp_path, **options)
    assert (outputs(ours, model_type) - outputs(tiny_model(model_type, layers=BLOCKS), model_type)).abs().max() > .1
    assert_close(outputs(theirs, model_type), outputs(ours, model_type))
    g_ours, g_theirs = _grads(ours, model_type), _grads(theirs, model_type)
    adapter = [n for n in g_ours if ".lora_" in n]
    assert adapter and all(g_ours[n].abs().max() > 0 for n in adapter)
    for n in adapter:
        torch.testing.assert_close(g_ours[n], g_theirs[_peft_name(n)], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("options", [dict(r=4, alpha=8, targets=["q", "v"]),
                                     dict(r=2, alpha=4, targets=["q", "k", "o"])])
def test_gpt2_fused_slices_export_to_peft(tmp_path, options):
    """GPT-2's c_attn: per-slice DoRA / rsLoRA written as PEFT's one module, same outputs."""
    for method in ("dora", "rslora"):
        ours, theirs = _pair("gpt2", method, tmp_path / method, **options)
        assert_close(outputs(theirs, "gpt2"), outputs(ours, "gpt2"))


def test_rslora_scale_is_alpha_over_sqrt_r():
    model = tiny_model("roberta")
    apply_method(model, {"name": "rslora", "r": 16, "alpha": 8})
    assert {s for _, layer in lora_layers(model) for s in layer.scaling.values()} == {8 / 4}


def test_dora_is_the_base_at_init_and_its_formula():
    """W' = m (W0 + sBA) / ||W0 + sBA||_c with m = ||W0||_c and B = 0 is W0; the magnitude adds d_out per matrix."""
    model = tiny_model("roberta")
    report = apply_method(model, {"name": "dora", "r": 4, "targets": ["q", "v"]})
    assert_close(outputs(model, "roberta"), outputs(tiny_model("roberta"), "roberta"))
    d, blocks = model.config.hidden_size, model.config.num_hidden_layers
    assert report.params.trainable_paper == blocks * 2 * (4 * 2 * d + d)
    from lora_repro.methods import paper_params
    assert paper_params(tiny_model("roberta"), report.config) == report.params.trainable_paper
    assert "low_rank_factors" not in capabilities("dora") and "merge" in capabilities("dora")


def test_dora_hand_computed_layer():
    """One nn.Linear by hand: W' = m ⊙_rows (W0 + s B A) / ||W0 + s B A||_rows, y = W' x + b."""
    from lora_repro.methods.dora import DoRALayer
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 3)
    layer = DoRALayer(lin, {"q": slice(0, 3)}, {"q": 2}, alpha=4.0).eval()
    w0 = lin.weight.detach().clone()
    with torch.no_grad():
        layer.lora_B["q"].normal_()
        layer.lora_magnitude["q"].mul_(torch.tensor([0.5, 2.0, 1.5]))
    x = torch.randn(7, 5)
    w = lin.weight + 2.0 * layer.lora_B["q"] @ layer.lora_A["q"]
    expected = x @ (layer.lora_magnitude["q"][:, None] * w / w.norm(dim=1, keepdim=True)).T + lin.bias
    torch.testing.assert_close(layer(x), expected)
    layer.merge()
    torch.testing.assert_close(layer(x), expected)
    layer.unmerge()
    torch.testing.assert_close(lin.weight.detach(), w0)


@pytest.mark.parametrize("method", ["dora", "pissa", "rslora"])
@pytest.mark.parametrize("model_type", ["roberta", "gpt2"])
def test_merge_keeps_outputs(method, model_type):
    model = _ours(model_type, method, r=4, targets=["q", "v"])
    before = outputs(model, model_type)
    merge_lora(model)
    assert_close(outputs(model, model_type), before)
    unmerge_lora(model)
    assert_close(outputs(model, model_type), before)


def test_pissa_init_equals_peft():
    """Same A, B and residual base weights as PEFT's init_lora_weights='pissa'; the model starts as the base."""
    from peft import LoraConfig, get_peft_model
    ours = tiny_model("roberta", layers=BLOCKS)
    apply_method(ours, {"name": "pissa", "r": 4, "alpha": 8, "targets": ["q", "v"]})
    theirs = get_peft_model(tiny_model("roberta", layers=BLOCKS), LoraConfig(
        r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights="pissa"))
    t = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        key = (_peft_name(name) if ".lora_" in name else
               "base_model.model." + name.replace(".weight", ".base_layer.weight") if ".base_layer." not in name
               else "base_model.model." + name)
        if ".base_layer." in name or ".lora_" in name:
            torch.testing.assert_close(p, t[key], rtol=1e-5, atol=1e-6)
    assert_close(outputs(ours, "roberta"), outputs(tiny_model("roberta", layers=BLOCKS), "roberta"), rtol=1e-4)
    q = ours.roberta.encoder.layer[0].attention.self.query
    w0 = tiny_model("roberta", layers=BLOCKS).roberta.encoder.layer[0].attention.self.query.weight
    top = torch.linalg.svdvals(w0)[:4]
    torch.testing.assert_close(torch.linalg.svdvals(q.delta_weight("q"))[:4], top, rtol=1e-4, atol=1e-5)


def test_pissa_export_round_trips_and_refuses_fused(tmp_path):
    ours, theirs = _pair("roberta", "pissa", tmp_path, r=4, alpha=8, targets=["q", "v"])
    assert_close(outputs(theirs, "roberta"), outputs(ours, "roberta"))
    gpt2 = _ours("gpt2", "pissa", r=2, targets=["q", "v"])
    with pytest.raises(ValueError, match="fused projection"):
        get_method("pissa").export_peft(gpt2, tmp_path / "gpt2", "x")


def test_loraplus_step_equals_peft_create_loraplus_optimizer(tmp_path):
    """One AdamW step from the same weights: B moves with lr * lr_ratio, A with lr, as PEFT's LoRA+ optimizer
    (weight decay 0: PEFT's decay rule is by name, ours by ndim; both agree with it off)."""
    from peft.optimizers import create_loraplus_optimizer
    ours, theirs = _pair("roberta", "loraplus", tmp_path, r=4, alpha=8, lr_ratio=8)
    opt_ours = make_optimizer(ours, lr=1e-2, weight_decay=0.0, impl="loop")
    opt_theirs = create_loraplus_optimizer(theirs, optimizer_cls=torch.optim.AdamW, lr=1e-2, loraplus_lr_ratio=8,
                                           weight_decay=0.0)
    assert sorted(g["lr"] for g in opt_ours.param_groups) == [1e-2, 1e-2, 8e-2]
    for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
        _loss(model, "roberta").backward()
        opt.step()
    params = dict(theirs.named_parameters())
    for n, p in ours.named_parameters():
        if ".lora_" in n:
            torch.testing.assert_close(p, params[_peft_name(n)], rtol=1e-5, atol=1e-7)
    # with lr_ratio 1 the step differs: the test can tell the ratio
    plain = _ours("roberta", "loraplus", r=4, alpha=8, lr_ratio=1)
    opt = make_optimizer(plain, lr=1e-2, weight_decay=0.0, impl="loop")
    _loss(plain, "roberta").backward()
    opt.step()
    b = next(n for n, _ in plain.named_parameters() if ".lora_B." in n)
    assert not torch.allclose(dict(plain.named_parameters())[b], params[_peft_name(b)])


def test_loraplus_rejects_bad_ratio():
    from lora_repro.methods import MethodConfigError
    with pytest.raises(MethodConfigError, match="lr_ratio=0"):
        apply_method(tiny_model("roberta"), {"name": "loraplus", "lr_ratio": 0})
