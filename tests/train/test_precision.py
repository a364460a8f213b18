"""Fast paths give the plain path's numbers: bf16 frozen base, fused/foreach AdamW, LoRA forward."""
import copy

import pytest
import torch
from torch import nn

from lora_repro.methods import LoRALayer, apply_method
from lora_repro.train import precision as fastpath
from lora_repro.train.optim import make_optimizer
from lora_repro.train.precision import compute_dtype, prepare_model_for_training
from tests.helpers import randomize_lora, tiny_batch, tiny_model

BF16_RTOL = 2e-2  # bf16 keeps 8 bits of mantissa: ~0.4% per rounding, a few roundings deep



def lora_model(model_type, targets=("q", "v")):
    model = tiny_model(model_type)
    apply_method(model, {"name": "lora", "r": 4, "alpha": 8, "targets": list(targets)})
    return randomize_lora(model, std=0.3)


def loss_of(model, model_type, precision="fp32"):
    batch = tiny_batch(model_type)
    if model_type == "gpt2":
        batch["labels"] = batch["input_ids"]
    else:
        batch["labels"] = torch.tensor([0, 2])
    with fastpath.autocast(model, precision):
        out = model(**batch)
    return out.loss, out.logits


def rel_err(a, b):
    a, b = a.detach(), b.detach()
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))


# --- frozen base in bf16 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model_type", ["roberta", "gpt2"])
def test_bf16_frozen_base_keeps_trainable_fp32_and_casts_the_rest(model_type):
    model = prepare_model_for_training(lora_model(model_type), "bf16")
    for name, p in model.named_parameters():
        module = model.get_submodule(name.rsplit(".", 1)[0])
        keep = p.requires_grad or fastpath.keeps_fp32(module)
        assert p.dtype == (torch.float32 if keep else torch.bfloat16), name
    assert any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("model_type", ["roberta", "deberta-v2", "gpt2"])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_fast_path_keeps_layernorm_and_embeddings_fp32(model_type, precision):
    """Review D7: only the frozen matrices go to bf16/fp16; LayerNorms, embeddings (and GPT-2's tied LM head,
    the same tensor) stay fp32, as AMP over fp32 weights (the authors' DeBERTa regime) keeps them."""
    model = prepare_model_for_training(lora_model(model_type), precision)
    norms = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)]
    embeddings = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Embedding)]
    assert norms and embeddings
    for name, module in norms + embeddings:
        assert all(p.dtype == torch.float32 for p in module.parameters()), name
    tables = {id(p) for _, m in embeddings for p in m.parameters()}
    frozen_matrices = [p for m in model.modules() if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D"
                       for p in m.parameters(recurse=False)
                       if not p.requires_grad and p.dim() == 2 and id(p) not in tables]
    assert frozen_matrices and all(p.dtype == compute_dtype(precision) for p in frozen_matrices)
    if model_type == "gpt2":
        assert model.lm_head.weight is model.transformer.wte.weight and model.lm_head.weight.dtype == torch.float32
    with fastpath.autocast(model, precision):
        loss_of(model, model_type, precision)[0].float().backward()


def test_fp32_is_the_authors_regime_everything_stays_fp32():
    model = prepare_model_for_training(lora_model("gpt2"), "fp32")
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("model_type", ["roberta", "gpt2"])
def test_bf16_frozen_base_outputs_and_gradients_match_fp32(model_type):
    """Same loss, logits and LoRA/head gradients as the fp32 model, within bf16 rounding."""
    ref = lora_model(model_type)  # eval mode: no dropout noise; gradients still flow
    fast = prepare_model_for_training(copy.deepcopy(ref), "bf16")
    loss_ref, logits_ref = loss_of(ref, model_type)
    loss_fast, logits_fast = loss_of(fast, model_type, "bf16")
    loss_ref.backward()
    loss_fast.backward()
    assert rel_err(logits_fast, logits_ref) < BF16_RTOL
    assert abs(loss_fast.item() - loss_ref.item()) < BF16_RTOL * abs(loss_ref.item())
    grads_ref = {n: p.grad for n, p in ref.named_parameters() if p.requires_grad}
    grads_fast = {n: p.grad for n, p in fast.named_parameters() if p.requires_grad}
    assert grads_ref.keys() == grads_fast.keys() and grads_ref
    for n in grads_ref:
        assert grads_fast[n].dtype == torch.float32, n  # gradients land on the fp32 trainable tensors
        # bf16 gradients: compare with the scale of the whole tensor, per tensor
        assert rel_err(grads_fast[n], grads_ref[n]) < 5e-2, n


def test_bf16_lora_layer_without_autocast_computes_in_the_input_dtype():
    """A bf16 base with fp32 factors works without autocast too: the factors are cast, gradients stay fp32."""
    torch.manual_seed(0)
    base = nn.Linear(16, 12)
    layer = LoRALayer(base.requires_grad_(False), {"q": slice(0, 12)}, {"q": 4}, alpha=8)
    nn.init.normal_(layer.lora_B["q"], std=0.5)
    x = torch.randn(3, 5, 16)
    ref = layer(x)
    fast = copy.deepcopy(layer)
    fast.base_layer.to(torch.bfloat16)
    out = fast(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16 and rel_err(out, ref) < BF16_RTOL
    out.float().sum().backward()
    ref.sum().backward()
    for t in ("A", "B"):
        g_fast, g_ref = getattr(fast, f"lora_{t}")["q"].grad, getattr(layer, f"lora_{t}")["q"].grad
        assert g_fast.dtype == torch.float32 and rel_err(g_fast, g_ref) < BF16_RTOL


def test_fp32_and_off_switch_change_nothing():
    model = lora_model("roberta")
    before = {n: p.dtype for n, p in model.named_parameters()}
    prepare_model_for_training(model, "fp32")
    prepare_model_for_training(model, "bf16", frozen_low_precision=False)
    assert {n: p.dtype for n, p in model.named_parameters()} == before


def test_bad_precision_names_the_choices():
    with pytest.raises(ValueError, match="fp32, bf16, fp16"):
        prepare_model_for_training(tiny_model("roberta"), "float8")


# --- optimizer --------------------------------------------------------------------------------------------

def _trained(model_type, impl, steps=3):
    torch.manual_seed(0)
    model = lora_model(model_type)
    opt = make_optimizer(model, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6, impl=impl)
    for _ in range(steps):
        loss, _ = loss_of(model, model_type)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model, opt


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_fused_and_foreach_adamw_equal_the_plain_loop(impl):
    ref, _ = _trained("roberta", "loop")
    fast, _ = _trained("roberta", impl)
    for (n, p), (_, q) in zip(ref.named_parameters(), fast.named_parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=n)


def test_optimizer_holds_only_trainable_tensors_and_skips_decay_on_1d():
    model = lora_model("roberta")
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.1)
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert held == {id(p) for p in model.parameters() if p.requires_grad}
    for g in opt.param_groups:
        assert all((p.ndim < 2) == (g["weight_decay"] == 0.0) for p in g["params"])
    assert opt.defaults["foreach"] is True  # auto on CPU


def test_optimizer_matches_hand_written_adamw_step():
    """One step from zero state: p - lr * (m_hat / (sqrt(v_hat) + eps) + wd * p) with bias-corrected moments."""
    p = nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
    model = nn.Module()
    model.w = p
    opt = make_optimizer(model, lr=0.1, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8)
    g = torch.tensor([[0.1, -0.2], [0.3, 0.0]])
    p.grad = g.clone()
    expected = p.detach() * (1 - 0.1 * 0.01) - 0.1 * g / (g.abs() + 1e-8)
    opt.step()
    torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=1e-7)


def test_make_optimizer_errors():
    model = tiny_model("roberta").requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        make_optimizer(model, 1e-3)
    with pytest.raises(ValueError, match="auto, fused, foreach, loop"):
        make_optimizer(lora_model("roberta"), 1e-3, impl="apex")


# --- length-grouped sampler ---------------------------------------------------------------------------------



def test_sdpa_and_eager_attention_agree():
    """The SDPA switch changes the kernel, not the function (fp32)."""
    from transformers import AutoModelForSequenceClassification

    from tests.helpers import tiny_config
    outs = []
    for impl in ("eager", "sdpa"):
        torch.manual_seed(0)
        cfg = tiny_config("roberta")
        cfg.num_labels = 3
        model = AutoModelForSequenceClassification.from_config(cfg, attn_implementation=impl).eval()
        with torch.no_grad():
            outs.append(model(**tiny_batch("roberta")).logits)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)


def test_bitfit_modules_keep_one_dtype_and_train_under_cpu_autocast():
    """BitFit trains biases of frozen Linear/LayerNorm weights: those modules stay fp32 as a whole."""
    model = tiny_model("roberta")
    apply_method(model, "bitfit")
    prepare_model_for_training(model, "bf16")
    for module in model.modules():
        dtypes = {p.dtype for p in module.parameters(recurse=False)}
        assert len(dtypes) <= 1, module
    assert model.roberta.embeddings.word_embeddings.weight.dtype == torch.float32  # embeddings stay fp32
    assert model.roberta.encoder.layer[0].intermediate.dense.weight.dtype == torch.float32  # its bias trains
    with fastpath.autocast(model, "bf16"):
        model(**tiny_batch("roberta")).logits.float().sum().backward()


def test_trainer_precision_auto_is_fp32_on_cpu_and_bf16_on_a_bf16_gpu():
    assert fastpath.resolve_precision("auto", "cpu") == "fp32"
    assert fastpath.resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="fp8"):
        fastpath.resolve_precision("fp8", "cpu")
