"""MoRA against hand-computed small cases and the authors' own ΔW construction (kongds/MoRA, peft-mora
`get_delta_weight`, types 1 and 6, transcribed below as the reference); PEFT has no MoRA."""
import math

import pytest
import torch

from lora_repro.methods import MethodConfigError, apply_method, get_method, paper_params
from lora_repro.methods.mora import MoRALayer, mora_rank
from tests.helpers import assert_close, outputs, perturb_trainable, tiny_model


def _layer(d_in, d_out, r_hat, kind, m=None):
    lin = torch.nn.Linear(d_in, d_out)
    layer = MoRALayer(lin, {"q": slice(0, d_out)}, r=1, kind=kind).eval()
    layer.r_hat["q"] = r_hat
    layer.mora_M["q"] = torch.nn.Parameter(m if m is not None else torch.randn(r_hat, r_hat))
    return layer


def test_sharing_hand_computed():
    """d_in 5, d_out 3, r̂ 2, M = [[1, 2], [3, 4]]: chunks (x1 x2) (x3 x4) (x5 x1) summed -> s = (x1+x3+x5,
    x1+x2+x4); y = M s repeated to 3 outputs: rows [3 2 1 2 1], [7 4 3 4 3], [3 2 1 2 1]."""
    layer = _layer(5, 3, 2, "sharing", torch.tensor([[1., 2.], [3., 4.]]))
    expected = torch.tensor([[3., 2, 1, 2, 1], [7, 4, 3, 4, 3], [3, 2, 1, 2, 1]])
    torch.testing.assert_close(layer.delta_weight("q"), expected)
    x = torch.randn(4, 5)
    torch.testing.assert_close(layer(x) - layer.base_layer(x), x @ expected.T)


def test_rotation_hand_computed():
    """d_in 4, d_out 4, r̂ 2: chunk 0 at angle 0, chunk 1 rotated by 1 radian (inv_freq = 1): ΔW = diag(M, M R(1))."""
    m = torch.tensor([[1., 2.], [3., 4.]])
    layer = _layer(4, 4, 2, "rotation", m)
    c, s = math.cos(1.0), math.sin(1.0)
    rot = torch.tensor([[c, -s], [s, c]])
    expected = torch.block_diag(m, m @ rot)
    torch.testing.assert_close(layer.delta_weight("q"), expected)


def _authors_delta(m, in_f, out_f, kind):
    """The authors' get_delta_weight (peft-mora, mora_type 1 and 6), as published."""
    r = m.shape[0]
    pad_size = r - in_f % r if in_f % r else 0
    repeat_time = out_f // r + (1 if out_f % r else 0)
    if kind == "sharing":
        w = torch.zeros(r, in_f)
        for i in range(in_f + pad_size):
            w[:, i % in_f] += m[:, i % r]
        return torch.cat([w] * repeat_time, dim=0)[:out_f]
    w = torch.zeros(in_f + pad_size, in_f)
    rb1 = in_f // r if in_f % r == 0 else in_f // r + 1
    rb2 = out_f // r if out_f % r == 0 else out_f // r + 1
    inv_freq = 1.0 / (10000 ** (torch.arange(0, r, 2).float() / r))
    freqs = torch.outer(torch.arange(rb1).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().unsqueeze(0), emb.sin().unsqueeze(0)
    aw2 = torch.cat((m[:, r // 2:], -m[:, :r // 2]), dim=-1)
    for i in range(rb1 - 1):
        w[i * r:(i + 1) * r, i * r:(i + 1) * r] = aw2 * sin[:, i] + m * cos[:, i]
    i = rb1 - 1
    w[i * r:, i * r:] = (aw2 * sin[:, i] + m * cos[:, i])[:, :r - pad_size]
    if pad_size > 0:
        w[i * r:, :pad_size] = (aw2 * sin[:, i] + m * cos[:, i])[:, r - pad_size:]
    return torch.cat([w] * rb2, dim=0)[:out_f] if in_f < out_f else w[:out_f]


@pytest.mark.parametrize("kind", ["sharing", "rotation"])
@pytest.mark.parametrize("d_in, d_out, r_hat", [(12, 12, 4), (10, 7, 4), (10, 13, 4), (9, 9, 6)])
def test_delta_weight_equals_the_authors(kind, d_in, d_out, r_hat):
    torch.manual_seed(0)
    layer = _layer(d_in, d_out, r_hat, kind)
    ours = layer.delta_weight("q")
    torch.testing.assert_close(ours, _authors_delta(layer.mora_M["q"].detach(), d_in, d_out, kind))
    x = torch.randn(3, d_in)
    torch.testing.assert_close(layer(x) - layer.base_layer(x), x @ ours.T, rtol=1e-5, atol=1e-5)


def test_rank_matches_lora_budget():
    """r̂² is the square nearest LoRA's r (d_in + d_out): 768 + 768 at r = 8 -> r̂ = 111 (12,321 vs 12,288)."""
    assert mora_rank(768, 768, 8) == 111 and mora_rank(768, 768, 8, "rotation") == 110
    assert mora_rank(1024, 1024, 4) == 91
    for d, r in [(768, 8), (1024, 4), (32, 2)]:
        r_hat = mora_rank(d, d, r)
        assert abs(r_hat ** 2 - 2 * d * r) <= r_hat


@pytest.mark.parametrize("model_type", ["roberta", "gpt2"])
@pytest.mark.parametrize("kind", ["sharing", "rotation"])
def test_model_surgery_count_and_merge(model_type, kind):
    model = tiny_model(model_type)
    report = apply_method(model, {"name": "mora", "r": 2, "kind": kind, "targets": ["q", "v"]})
    d = model.config.hidden_size
    assert report.params.trainable_paper == paper_params(tiny_model(model_type), report.config) \
        == model.config.num_hidden_layers * 2 * mora_rank(d, d, 2, kind) ** 2
    assert_close(outputs(model, model_type), outputs(tiny_model(model_type), model_type))   # M = 0 at init
    perturb_trainable(model)
    before = outputs(model, model_type)
    assert (before - outputs(tiny_model(model_type), model_type)).abs().max() > 1e-3
    get_method("mora").merge(model)
    assert_close(outputs(model, model_type), before)
    get_method("mora").unmerge(model)
    assert_close(outputs(model, model_type), before)


def test_gradients_reach_m_only():
    model = tiny_model("roberta")
    apply_method(model, {"name": "mora", "r": 2})
    model(input_ids=torch.tensor([[5, 6, 7]])).logits.sum().backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert grads and all(".mora_M." in n or n.startswith("classifier.") for n in grads)


@pytest.mark.parametrize("option, match", [({"kind": "rope"}, "kind='rope'; valid kinds: sharing, rotation"),
                                           ({"r": 0}, "r=0"), ({"targets": ["x"]}, "targets=")])
def test_bad_options(option, match):
    with pytest.raises(MethodConfigError, match=match):
        apply_method(tiny_model("roberta"), {"name": "mora", **option})
