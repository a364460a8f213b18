import copy

import pytest
import torch
from torch import nn

from lora_repro.methods import MethodConfigError, apply_method, count_params
from lora_repro.methods.arch import blocks, is_head_param
from tests.helpers import BLOCKS, tiny_batch, tiny_model

D, L, R = 32, 3, 4  # tiny models: hidden 32, 3 blocks; bottleneck used below
PER_ADAPTER = 2 * D * R + R + D
ADAPTERS = {  # method config -> paper-formula count L̂_Adpt·(2dr + r + d) + 2·L̂_LN·d
    "adapter_h": ({"name": "adapter_h", "r": R}, 2 * L * PER_ADAPTER),
    "adapter_p": ({"name": "adapter_p", "r": R}, L * PER_ADAPTER),
    "adapter_l": ({"name": "adapter_l", "r": R}, L * PER_ADAPTER + 2 * L * D),
    "adapter_d": ({"name": "adapter_d", "r": R, "drop": 1}, 2 * (L - 1) * PER_ADAPTER),
    "adapter_d_pfeiffer": ({"name": "adapter_d", "r": R, "drop": 2, "base": "pfeiffer"}, 1 * PER_ADAPTER),
}


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request, arch_type):
    cfg, count = ADAPTERS[request.param]
    if arch_type == "gpt2" and cfg["name"] == "adapter_p":  # pre-LN GPT-2 has no authors' Pfeiffer placement
        cfg = {**cfg, "placement": "projection"}
    return cfg, count


def _loss(model, arch_type, batch):
    out = model(**batch)
    if arch_type == "gpt2":
        return out.logits.pow(2).mean()
    return out.logits.sum()


def test_counts_follow_the_paper_formula_and_only_adapters_train(arch_type, adapter):
    cfg, expected = adapter
    model = tiny_model(arch_type, layers=BLOCKS)
    rep = apply_method(model, cfg)
    assert rep.params.trainable_paper == expected
    for name, p in model.named_parameters():
        assert p.requires_grad == (".adapter." in name or is_head_param(model, name)), name
    assert rep.params.total == count_params(model).total


def test_adapters_start_as_the_identity(arch_type, adapter):
    base = tiny_model(arch_type, layers=BLOCKS)
    model = copy.deepcopy(base)
    apply_method(model, {**adapter[0], "init": "identity"})
    batch = tiny_batch(arch_type)
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, base(**batch).logits)


def test_gradients_and_one_step_touch_only_trainable_params(arch_type, adapter):
    model = tiny_model(arch_type, layers=BLOCKS)
    apply_method(model, adapter[0])
    model.train()
    batch = tiny_batch(arch_type)
    _loss(model, arch_type, batch).backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
    ups = [p for n, p in model.named_parameters() if n.endswith("adapter.up.weight")]
    assert ups and all(p.grad.abs().sum() > 0 for p in ups)  # the up side receives gradient

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2).step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed <= trainable
    assert any(".adapter.up." in n for n in changed)

    model.eval()
    base = tiny_model(arch_type, layers=BLOCKS)
    with torch.no_grad():
        assert not torch.allclose(model(**batch).logits, base(**batch).logits)


def test_adapter_names_and_base_keys_unchanged(arch_type):
    base = tiny_model(arch_type, layers=BLOCKS)
    model = copy.deepcopy(base)
    apply_method(model, {"name": "adapter_h", "r": R})
    keys = set(model.state_dict())
    assert set(base.state_dict()) <= keys  # base weights keep their keys
    new = keys - set(base.state_dict())
    assert new and all(".adapter.down." in k or ".adapter.up." in k for k in new)
    prefix = {"roberta": "roberta.encoder.layer.0.attention.output.dropout",   # the authors': after the dropout
              "bert": "bert.encoder.layer.0.attention.output.dropout",
              "deberta-v2": "deberta.encoder.layer.0.attention.output.dropout",
              "gpt2": "transformer.h.0.attn.resid_dropout"}[arch_type]
    assert f"{prefix}.adapter.down.weight" in keys and f"{prefix}.adapter.up.bias" in keys
    # a state dict of the adapted model loads into a fresh adapted model (adapter-only checkpoints work)
    other = copy.deepcopy(base)
    apply_method(other, {"name": "adapter_h", "r": R})
    other.load_state_dict(model.state_dict())


def test_adapter_l_has_its_own_layernorm_and_sits_on_the_block_output(arch_type):
    model = tiny_model(arch_type, layers=BLOCKS)
    apply_method(model, {"name": "adapter_l", "r": R})
    for block in blocks(model):
        assert isinstance(block.adapter.layernorm, nn.LayerNorm)


def test_adapter_d_leaves_the_lowest_blocks_alone(arch_type):
    model = tiny_model(arch_type, layers=BLOCKS)
    apply_method(model, {"name": "adapter_d", "r": R, "drop": 2})
    with_adapter = [i for i, b in enumerate(blocks(model)) if any(".adapter." in n for n, _ in b.named_parameters())]
    assert with_adapter == [2]


def test_houlsby_train_layernorm_adds_the_block_layernorms(arch_type):
    model = tiny_model(arch_type, layers=BLOCKS)
    rep = apply_method(model, {"name": "adapter_h", "r": R, "train_layernorm": True})
    ln = sum(p.numel() for b in blocks(model) for m in b.modules() if isinstance(m, nn.LayerNorm)
             for p in m.parameters())
    assert rep.params.trainable_paper == 2 * L * PER_ADAPTER + ln
    assert ln == L * 2 * 2 * D  # two LayerNorms of weight+bias per block


def test_layers_option_picks_blocks(arch_type):
    model = tiny_model(arch_type, layers=BLOCKS)
    rep = apply_method(model, {"name": "adapter_p", "r": R, "layers": [0, 2], "placement": "projection"})
    assert rep.params.trainable_paper == 2 * PER_ADAPTER


@pytest.mark.parametrize("cfg, match", [
    ({"name": "adapter_h", "r": 0}, r"r=0"),
    ({"name": "adapter_h", "r": "8"}, r"r='8'"),
    ({"name": "adapter_p", "r": 2.5}, r"r=2.5"),
    ({"name": "adapter_l", "nonlinearity": "sigmoid"}, r"nonlinearity='sigmoid'.*relu"),
    ({"name": "adapter_h", "init_scale": 0}, r"init_scale=0"),
    ({"name": "adapter_h", "train_layernorm": "yes"}, r"train_layernorm='yes'"),
    ({"name": "adapter_p", "layers": [0, 3]}, r"layers=\[0, 3\].*\[0, 2\]"),
    ({"name": "adapter_p", "layers": []}, r"layers=\[\]"),
    ({"name": "adapter_d", "drop": 3}, r"drop=3.*\[0, 2\]"),
    ({"name": "adapter_d", "drop": -1}, r"drop=-1"),
    ({"name": "adapter_d", "base": "lin"}, r"base='lin'.*houlsby"),
    ({"name": "adapter_d", "layers": [1]}, r"unknown option.*layers"),
    ({"name": "adapter_h", "init": "xavier"}, r"init='xavier'.*authors.*identity"),
    ({"name": "adapter_p", "placement": "before"}, r"placement='before'.*authors.*projection"),
])
def test_bad_options_fail_before_any_change(cfg, match):
    model = tiny_model("roberta", layers=BLOCKS)
    before = copy.deepcopy(model.state_dict())
    grads = [p.requires_grad for p in model.parameters()]
    with pytest.raises(MethodConfigError, match=match):
        apply_method(model, cfg)
    assert model.state_dict().keys() == before.keys()
    assert [p.requires_grad for p in model.parameters()] == grads


def test_a_second_adapter_method_is_refused():
    model = tiny_model("bert", layers=BLOCKS)
    apply_method(model, {"name": "adapter_p", "r": R})
    with pytest.raises(MethodConfigError, match="already has an adapter"):
        apply_method(model, {"name": "adapter_h", "r": R})


def test_adapters_build_on_the_meta_device():
    model = tiny_model("gpt2", layers=BLOCKS).to("meta")
    rep = apply_method(model, {"name": "adapter_h", "r": R})
    assert rep.params.trainable_paper == 2 * L * PER_ADAPTER
    assert all(p.is_meta for p in model.parameters())


# --- the authors' adapters (Table 2's † rows; microsoft/LoRA examples/NLU, review D5) -----------------------

def _with_adapter_weights(model, std=0.3, seed=5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".adapter." in n:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def test_defaults_are_the_authors_swish_houlsby_and_relu_pfeiffer():
    from lora_repro.methods import get_method
    h, p = get_method("adapter_h").defaults, get_method("adapter_p").defaults
    assert (h["nonlinearity"], h["init"], h["placement"]) == ("swish", "authors", "authors")
    assert (p["nonlinearity"], p["init"], p["placement"]) == ("relu", "authors", "authors")
    model = tiny_model("roberta", layers=BLOCKS)
    apply_method(model, "adapter_h")
    adapter = model.roberta.encoder.layer[0].attention.output.dropout.adapter
    assert isinstance(adapter.act, nn.SiLU)


def test_authors_init_is_the_models_init_weights():
    """HF 4.4's init_weights (the authors' fork) draws every Linear N(0, initializer_range) and zeroes biases."""
    model = tiny_model("roberta", layers=BLOCKS)
    model.config.initializer_range = 0.5  # large, so the draw is told apart from a small-init scheme
    apply_method(model, {"name": "adapter_h", "r": 16})
    params = dict(model.named_parameters())
    ws = torch.cat([p.detach().flatten() for n, p in params.items() if n.endswith(("down.weight", "up.weight"))])
    bs = torch.cat([p.detach().flatten() for n, p in params.items() if n.endswith(("down.bias", "up.bias"))])
    assert float(ws.std()) == pytest.approx(0.5, rel=0.1) and float(bs.abs().max()) == 0.0


def test_houlsby_follows_the_output_dropout_as_the_authors_code():
    """RobertaSelfOutput in the authors' fork: LN(adapter(dropout(dense(h))) + x), adapter(y) = y + B(swish(A(y)))."""
    model = tiny_model("roberta", layers=BLOCKS)
    apply_method(model, {"name": "adapter_h", "r": R})
    _with_adapter_weights(model)
    out = model.roberta.encoder.layer[0].attention.output
    torch.manual_seed(0)
    h, x = torch.randn(2, 5, D), torch.randn(2, 5, D)
    out.train()
    torch.manual_seed(1)
    got = out(h, x)
    torch.manual_seed(1)
    y = out.dropout.__class__.forward(out.dropout, out.dense(h))      # same dropout mask (same seed)
    a = out.dropout.adapter
    expected = out.LayerNorm(y + a.up(torch.nn.functional.silu(a.down(y))) + x)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("arch_type", ["roberta", "deberta-v2"])
def test_pfeiffer_reads_the_layernorm_output_with_residual_h_as_the_authors_code(arch_type):
    """RobertaOutput in the authors' fork: h = dropout(dense(.)); LN(h + B(relu(A(LN(h + x)))) + x)."""
    model = tiny_model(arch_type, layers=BLOCKS)
    apply_method(model, {"name": "adapter_p", "r": R})
    _with_adapter_weights(model)
    out = blocks(model)[1].output
    hidden, x = torch.randn(2, 5, out.dense.in_features), torch.randn(2, 5, D)
    a = out.adapter
    h = out.dense(hidden)  # eval: dropout is the identity
    expected = out.LayerNorm(h + a.up(torch.relu(a.down(out.LayerNorm(h + x)))) + x)
    torch.testing.assert_close(out(hidden, x), expected)
    # the old plain bottleneck on the projection computes something else
    other = tiny_model(arch_type, layers=BLOCKS)
    apply_method(other, {"name": "adapter_p", "r": R, "placement": "projection"})
    blocks(other)[1].output.dense.adapter.load_state_dict(a.state_dict())  # same weights everywhere
    with torch.no_grad():
        assert not torch.allclose(blocks(other)[1].output(hidden, x), expected)


def test_pfeiffer_authors_placement_needs_a_post_layernorm_block():
    with pytest.raises(MethodConfigError, match="placement='authors'.*placement='projection'"):
        apply_method(tiny_model("gpt2", layers=BLOCKS), {"name": "adapter_p", "r": R})
