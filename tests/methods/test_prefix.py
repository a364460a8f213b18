import copy

import pytest
import torch
import torch.nn.functional as F

from lora_repro.methods import MethodConfigError, apply_method
from lora_repro.methods.arch import blocks, is_head_param
from tests.helpers import BLOCKS, tiny_batch, tiny_model

D, L = 32, 3
LP, LI = 3, 2


@pytest.fixture(params=["prefix_embed", "prefix_layer"])
def method(request):
    return request.param


def _expected(method):
    return (1 if method == "prefix_embed" else L) * D * (LP + LI)


def _prefixed(arch_type, method, seed=0):
    model = tiny_model(arch_type, seed=seed, layers=BLOCKS)
    rep = apply_method(model, {"name": method, "prefix_len": LP, "infix_len": LI})
    return model, rep


def _loss(model, arch_type, batch):
    if arch_type == "gpt2":
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        return model(**batch, labels=labels).loss
    return model(**batch).logits.sum()


def test_only_the_inserted_tokens_train_and_count_exactly(arch_type, method):
    model, rep = _prefixed(arch_type, method)
    assert rep.params.trainable_paper == _expected(method)
    head = sum(p.numel() for n, p in model.named_parameters() if is_head_param(model, n))
    assert rep.params.trainable == _expected(method) + head
    body_trainable = [n for n, p in model.named_parameters() if p.requires_grad and not is_head_param(model, n)]
    assert body_trainable == [f"{model.base_model_prefix}.prefix_tuning.tokens"]


def test_output_shapes_equal_the_inputs(arch_type, method):
    base = tiny_model(arch_type, layers=BLOCKS)
    model, _ = _prefixed(arch_type, method)
    batch = tiny_batch(arch_type)
    with torch.no_grad():
        assert model(**batch).logits.shape == base(**batch).logits.shape


def test_gradients_and_one_step_touch_only_trainable_params(arch_type, method):
    model, _ = _prefixed(arch_type, method)
    model.train()
    batch = tiny_batch(arch_type)
    _loss(model, arch_type, batch).backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
    tokens = model.get_submodule(f"{model.base_model_prefix}.prefix_tuning").tokens
    assert tokens.grad.abs().sum() > 0
    if method == "prefix_layer":  # every layer's activations receive gradient (the last block's reach the output)
        assert all(tokens.grad[i].abs().sum() > 0 for i in range(L))

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2).step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= {n for n, p in model.named_parameters() if p.requires_grad}
    assert f"{model.base_model_prefix}.prefix_tuning.tokens" in changed


def test_padding_does_not_change_results(arch_type, method):
    """Row 0 padded at the end gives what row 0 alone gives: the infix follows the last real token."""
    model, _ = _prefixed(arch_type, method)
    batch = tiny_batch(arch_type)  # row 0 has 3 padding tokens at the end
    n_real = int(batch["attention_mask"][0].sum())
    alone = {k: v[:1, :n_real] for k, v in batch.items()}
    with torch.no_grad():
        padded, single = model(**batch).logits[0], model(**alone).logits[0]
    if arch_type == "gpt2":
        padded = padded[:n_real]
    torch.testing.assert_close(padded, single, atol=1e-5, rtol=1e-5)


def test_gpt2_logits_and_loss_match_the_explicit_extended_sequence(method):
    """[prefix, prompt, infix, rest]: logit t is the one that predicts caller token t+1."""
    model, _ = _prefixed("gpt2", method)
    with torch.no_grad():
        model.transformer.prefix_tuning.tokens.normal_()
    ids = torch.randint(3, 100, (2, 7), generator=torch.Generator().manual_seed(3))
    p = 4  # prompt length: the infix goes after the first 4 tokens
    labels = ids.clone()
    labels[:, :p] = -100
    with torch.no_grad():
        out = model(input_ids=ids, labels=labels, infix_position=torch.tensor([p, p]))
        tok = model.transformer.prefix_tuning.tokens
        emb = model.transformer.wte(ids)
        vec = tok if method == "prefix_embed" else torch.zeros_like(tok[0])
        ext = torch.cat([vec[:LP].expand(2, -1, -1), emb[:, :p], vec[LP:].expand(2, -1, -1), emb[:, p:]], dim=1)
        captured = []
        if method == "prefix_layer":
            inserted = list(range(LP)) + list(range(LP + p, LP + p + LI))

            def put(i):
                def hook(block, args, kwargs):
                    h = (args[0] if args else kwargs["hidden_states"]).clone()
                    h[:, inserted] = tok[i]
                    captured.append(i)
                    return ((h, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": h})
                return hook
            reference = tiny_model("gpt2", layers=BLOCKS)
            handles = [b.register_forward_pre_hook(put(i), with_kwargs=True) for i, b in enumerate(blocks(reference))]
            ref_logits = reference(inputs_embeds=ext).logits
            for h in handles:
                h.remove()
        else:
            ref_logits = type(model).forward(model, inputs_embeds=ext).logits
    index = [LP + t + (LI if t >= p else 0) + (LI if t == p - 1 else 0) for t in range(7)]
    expected = ref_logits[:, index]
    torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=1e-5)
    ce = F.cross_entropy(expected[:, :-1].reshape(-1, expected.shape[-1]), labels[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, ce, atol=1e-5, rtol=1e-5)


def test_encoders_keep_cls_first_and_put_the_infix_after_the_text():
    from lora_repro.methods.prefix import _extend
    model, _ = _prefixed("roberta", "prefix_embed")
    batch = tiny_batch("roberta")
    ext, inserted, new_t, _ = _extend(model, batch["input_ids"], None, batch["attention_mask"], None, None)
    n_real = int(batch["attention_mask"][0].sum())
    assert inserted[0].tolist() == [1, 2, 3] + [n_real + LP, n_real + LP + 1]
    assert new_t[0, 0] == 0 and new_t[0, 1] == 1 + LP
    emb = model.roberta.embeddings.word_embeddings(batch["input_ids"])
    torch.testing.assert_close(ext["inputs_embeds"][:, 0], emb[:, 0])  # CLS stays at position 0
    assert ext["attention_mask"][0].tolist() == [1] * (n_real + LP + LI) + [0] * 3


def test_prefix_layer_replaces_every_block_input():
    model, _ = _prefixed("bert", "prefix_layer")
    seen = {}

    def spy(i):
        def hook(block, args, kwargs):
            seen[i] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
        return hook
    for i, b in enumerate(blocks(model)):
        b.register_forward_pre_hook(spy(i), with_kwargs=True)
    batch = tiny_batch("bert")
    with torch.no_grad():
        model(**batch)
    tok = model.bert.prefix_tuning.tokens
    n_real = int(batch["attention_mask"][0].sum())
    for i in range(L):
        torch.testing.assert_close(seen[i][0, 1:1 + LP], tok[i, :LP])
        torch.testing.assert_close(seen[i][0, n_real + LP:n_real + LP + LI], tok[i, LP:])


def test_gpt2_generate_matches_greedy_forward(method):
    model, _ = _prefixed("gpt2", method)
    with torch.no_grad():
        model.transformer.prefix_tuning.tokens.normal_()
    ids = torch.randint(3, 100, (2, 6), generator=torch.Generator().manual_seed(4))
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False, pad_token_id=0)
    seq = ids
    for _ in range(4):
        with torch.no_grad():
            logits = model(input_ids=seq, infix_position=torch.full((2,), 6)).logits
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)
    beams = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, num_beams=2,
                           do_sample=False, pad_token_id=0)
    assert beams.shape == (2, 9) and torch.equal(beams[:, :6], ids)


def test_gpt2_runtime_errors():
    model, _ = _prefixed("gpt2", "prefix_embed")
    ids = torch.randint(3, 100, (2, 6))
    with pytest.raises(ValueError, match="infix_position"):
        model(input_ids=ids, infix_position=torch.tensor([7, 2]))
    with pytest.raises(ValueError, match="position_ids"):
        model(input_ids=ids, position_ids=torch.arange(6)[None].expand(2, -1))
    past = model(input_ids=ids, use_cache=True).past_key_values
    with pytest.raises(NotImplementedError, match="generate"):
        model(input_ids=ids[:, :1], past_key_values=past)
    with pytest.raises(ValueError, match="left padding"):
        model.generate(ids, attention_mask=torch.tensor([[1] * 6, [1] * 4 + [0] * 2]), max_new_tokens=2)


@pytest.mark.parametrize("opts, match", [
    ({"prefix_len": -1}, r"prefix_len=-1"),
    ({"infix_len": -2}, r"infix_len=-2"),
    ({"prefix_len": 0, "infix_len": 0}, r"at least one must be > 0"),
    ({"prefix_len": "4"}, r"prefix_len='4'"),
    ({"prefix_len": True}, r"prefix_len=True"),
    ({"prefix_len": 60, "infix_len": 4}, r"no room"),
    ({"prefix_length": 4}, r"unknown option.*prefix_length"),
])
def test_bad_lengths_fail_before_any_change(method, opts, match):
    model = tiny_model("gpt2", layers=BLOCKS)
    before = copy.deepcopy(model.state_dict())
    grads = [p.requires_grad for p in model.parameters()]
    with pytest.raises(MethodConfigError, match=match):
        apply_method(model, {"name": method, **opts})
    assert model.state_dict().keys() == before.keys()
    assert [p.requires_grad for p in model.parameters()] == grads
    assert "forward" not in vars(model)


def test_prefix_and_infix_alone(arch_type):
    for lp, li in ((4, 0), (0, 3)):
        model = tiny_model(arch_type, layers=BLOCKS)
        rep = apply_method(model, {"name": "prefix_embed", "prefix_len": lp, "infix_len": li})
        assert rep.params.trainable_paper == D * (lp + li)
        batch = tiny_batch(arch_type)
        with torch.no_grad():
            assert model(**batch).logits.shape[0] == 2


def test_a_prefixed_model_survives_deepcopy():
    model, _ = _prefixed("gpt2", "prefix_layer")
    twin = copy.deepcopy(model)
    batch = tiny_batch("gpt2")
    with torch.no_grad():
        twin.transformer.prefix_tuning.tokens.add_(1.0)
        assert not torch.allclose(twin(**batch).logits, model(**batch).logits)


def test_forward_signature_names_infix_position():
    import inspect
    model, _ = _prefixed("gpt2", "prefix_embed")
    params = inspect.signature(model.forward).parameters
    assert "infix_position" in params and "input_ids" in params and "labels" in params
