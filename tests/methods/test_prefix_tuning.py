"""Li & Liang's prefix-tuning (Table 3's PreLayer row): keys and values per layer, MLP-reparametrised."""
import pytest
import torch

from lora_repro.methods import MethodConfigError, apply_method, paper_params
from lora_repro.methods.arch import blocks
from tests.helpers import BLOCKS, tiny_model

LP, MID = 3, 16


def _tuned(mid=MID, seed=0):
    model = tiny_model("gpt2", layers=BLOCKS, seed=seed)
    rep = apply_method(model, {"name": "prefix_tuning", "prefix_len": LP, "mid_dim": mid})
    return model, rep


def _explicit(model, ids, kv):
    """Reference: run every attention with the prefix keys/values prepended by hand (eager attention)."""
    from transformers import DynamicCache
    cache = DynamicCache()
    for i in range(kv.shape[0]):
        cache.update(kv[i, 0][None].expand(len(ids), -1, -1, -1), kv[i, 1][None].expand(len(ids), -1, -1, -1), i)
    mask = torch.ones(len(ids), LP + ids.shape[1], dtype=torch.long)
    positions = torch.arange(LP, LP + ids.shape[1])[None].expand(len(ids), -1)
    return type(model).forward(model, input_ids=ids, attention_mask=mask, position_ids=positions,
                               past_key_values=cache).logits


def test_counts_what_trains_and_only_the_prefix_trains():
    model, rep = _tuned()
    d, n_layers = model.config.n_embd, BLOCKS
    mlp = LP * d + d * MID + MID + MID * 2 * n_layers * d + 2 * n_layers * d
    assert rep.params.trainable_paper == mlp == paper_params(model, {"name": "prefix_tuning", "prefix_len": LP,
                                                                      "mid_dim": MID})
    body = [n for n, p in model.named_parameters() if p.requires_grad]
    assert body and all(n.startswith("transformer.prefix_kv.") for n in body)
    direct, rep0 = _tuned(mid=0)
    assert rep0.params.trainable_paper == 2 * n_layers * d * LP   # Li & Liang's kept prefix, 2·L·d·l_p


def test_layer_i_attends_to_entries_2i_and_2i_plus_1_of_the_mlp_output():
    """The MLP output [l_p, 2·L·d] viewed as [l_p, 2L, heads, head_dim]: keys of layer i are entry 2i."""
    model, _ = _tuned()
    prefix = model.transformer.prefix_kv
    flat = prefix.control_trans(prefix.wte.weight)
    h, hd = model.config.n_head, model.config.n_embd // model.config.n_head
    kv = prefix.key_values()
    for i in range(BLOCKS):
        torch.testing.assert_close(kv[i, 0], flat.view(LP, 2 * BLOCKS, h, hd)[:, 2 * i].transpose(0, 1))
        torch.testing.assert_close(kv[i, 1], flat.view(LP, 2 * BLOCKS, h, hd)[:, 2 * i + 1].transpose(0, 1))


def test_forward_equals_attention_over_prefix_keys_and_values_and_the_prefix_gets_gradient():
    model, _ = _tuned()
    ids = torch.randint(3, 100, (2, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits,
                                   _explicit(model, ids, model.transformer.prefix_kv.key_values()))
        base = tiny_model("gpt2", layers=BLOCKS)
        assert not torch.allclose(model(input_ids=ids).logits, base(input_ids=ids).logits)
    model.train()
    model(input_ids=ids).logits.pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == p.requires_grad, name


def test_right_padding_does_not_change_the_real_tokens():
    model, _ = _tuned()
    ids = torch.randint(3, 100, (2, 7), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    mask[0, -2:] = 0
    with torch.no_grad():
        padded = model(input_ids=ids, attention_mask=mask).logits[0, :5]
        alone = model(input_ids=ids[:1, :5]).logits[0]
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("beams", [1, 2])
def test_generate_matches_greedy_forward_and_returns_prompt_plus_new_tokens(beams):
    model, _ = _tuned()
    with torch.no_grad():
        for p in model.transformer.prefix_kv.parameters():
            p.normal_()
    ids = torch.randint(3, 100, (2, 5), generator=torch.Generator().manual_seed(4))
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False,
                         num_beams=beams, pad_token_id=0)
    assert out.shape == (2, 8) and torch.equal(out[:, :5], ids)
    if beams == 1:
        seq = ids
        for _ in range(3):
            with torch.no_grad():
                logits = model(input_ids=seq).logits
            seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        assert torch.equal(out, seq)


@pytest.mark.parametrize("opts, match", [
    ({"prefix_len": 0}, r"prefix_len=0"),
    ({"prefix_len": "10"}, r"prefix_len='10'"),
    ({"mid_dim": -1}, r"mid_dim=-1"),
    ({"prefix_len": 64}, r"no room"),
    ({"preseqlen": 4}, r"unknown option.*preseqlen"),
])
def test_bad_options_fail_before_any_change(opts, match):
    model = tiny_model("gpt2", layers=BLOCKS)
    with pytest.raises(MethodConfigError, match=match):
        apply_method(model, {"name": "prefix_tuning", **opts})
    assert not hasattr(model.transformer, "prefix_kv")


def test_encoders_are_refused_with_the_alternatives():
    with pytest.raises(MethodConfigError, match="decoder-only.*prefix_embed or prefix_layer"):
        apply_method(tiny_model("roberta"), "prefix_tuning")


def test_one_prefix_method_per_model_and_the_text_budget():
    from lora_repro.methods.prefix import inserted_positions
    model, _ = _tuned()
    assert inserted_positions(model) == LP
    with pytest.raises(MethodConfigError, match="already has a prefix"):
        apply_method(model, "prefix_tuning")
    with pytest.raises(MethodConfigError, match="already has prefix tokens"):
        apply_method(model, "prefix_layer")
    assert len(blocks(model)) == BLOCKS
