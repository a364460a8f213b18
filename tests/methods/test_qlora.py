"""QLoRA: the pure-torch NF4 reference against hand-computed cases and bitsandbytes' published layout (and against
bitsandbytes itself where it is importable on a GPU); the QLoRA model is exactly LoRA on the dequantized base."""
import copy

import pytest
import torch

from lora_repro.methods import UnsupportedCapabilityError, apply_method, capabilities, get_method, paper_params
from lora_repro.methods.arch import blocks, get_arch
from lora_repro.methods.nf4 import (
    NF4_LEVELS,
    bits_per_weight,
    bitsandbytes_available,
    block_maxima,
    dequantize_nf4,
    dynamic_map,
    quantize_nf4,
)
from lora_repro.methods.qlora import NF4Linear, frozen_weight_bits, nf4_layers
from tests.helpers import BLOCKS, assert_close, outputs, randomize_lora, tiny_model


def test_levels_are_exact_and_packing_is_high_nibble_first():
    """A block that holds 3 x the 16 levels (and 16 more) is stored exactly; codes 0 (-1.0) and 15 (1.0) of the
    first two values share byte 0x0F."""
    levels = torch.tensor(NF4_LEVELS)
    w = 3.0 * torch.cat([levels[[0, 15]], levels, levels, levels, levels[:14]])   # 64 values, max |w| = 3
    q = quantize_nf4(w, double_quant=False)
    assert q.packed[0].item() == 0x0F and q.packed.numel() == 32
    torch.testing.assert_close(dequantize_nf4(q), w)
    # a value is rounded to the nearest level: 0.3 of the max lies between 0.2461 (code 10) and 0.3379 (code 11)
    v = torch.tensor([1.0, 0.3, 0.25, -0.04, -0.05])  # -0.0455 is the midpoint of the levels 0, -0.0911
    torch.testing.assert_close(dequantize_nf4(quantize_nf4(v, double_quant=False)),
                               torch.tensor([1.0, NF4_LEVELS[11], NF4_LEVELS[10], 0.0, NF4_LEVELS[6]]))


def test_dynamic_map_is_bitsandbytes_signed_map():
    """256 sorted distinct values in [-1, 1] with 0 and 1; exponent i contributes 2^i fractions of 10^(i-6) per sign:
    the smallest magnitude is 10^-6 * (0.1 + 1) / 2."""
    m = dynamic_map()
    assert m.shape == (256,) and torch.equal(m, m.sort().values) and m.unique().numel() == 256
    assert m[0] > -1 and m[-1] == 1.0 and (m == 0).sum() == 1
    assert torch.isclose(m[m > 0].min(), torch.tensor(0.55e-6))
    assert ((m.abs() >= 0.1) & (m.abs() < 1)).sum() == 2 * 64
    assert (m > 0).sum() == 128 and (m < 0).sum() == 127   # 127 per sign, plus 1.0


def test_double_quantization_storage_and_error():
    """1024 x 1024 weights: 4 bits + 8/64 (codes of the block maxima) + 32/(64*256) (their fp32 maxima) + the offset:
    about 4.127 bits per weight; without double quantization 4.5. The maxima come back within 1/100 of the largest."""
    w = torch.randn(1024, 1024)
    dq, plain = quantize_nf4(w), quantize_nf4(w, double_quant=False)
    n = w.numel()
    assert bits_per_weight(dq) == pytest.approx(4 + 8 / 64 + 32 / (64 * 256) + 32 / n)
    assert bits_per_weight(plain) == 4.5
    exact = block_maxima(plain)
    assert (block_maxima(dq) - exact).abs().max() < exact.max() / 100
    err = (dequantize_nf4(dq) - w).abs().mean() / w.abs().mean()
    assert 0.05 < err < 0.15     # 4-bit: about 9% mean relative error on Gaussian weights


def test_statistics_survive_a_dtype_cast():
    layer = NF4Linear(torch.nn.Linear(64, 32))
    before = layer.weight.clone()
    layer.to(torch.bfloat16)
    torch.testing.assert_close(dequantize_nf4(layer.quantized()), before)


def _dequantized_base(model_type):
    """The base with every projection replaced by its NF4 round trip (plain nn.Linear / Conv1D)."""
    base = tiny_model(model_type, layers=BLOCKS)
    sites = get_arch(base).sites
    with torch.no_grad():
        for block in blocks(base):
            for path in {s.path for s in sites.values()}:
                m = block.get_submodule(path)
                w = m.weight.T if model_type == "gpt2" else m.weight
                d = dequantize_nf4(quantize_nf4(w))
                m.weight.copy_(d.T if model_type == "gpt2" else d)
    return base


@pytest.mark.parametrize("model_type", ["roberta", "gpt2"])
def test_qlora_is_lora_on_the_dequantized_base(model_type):
    ours = tiny_model(model_type, layers=BLOCKS)
    report = apply_method(ours, {"name": "qlora", "r": 2, "backend": "torch"})
    assert len(nf4_layers(ours)) == BLOCKS * len({s.path for s in get_arch(ours).sites.values()})
    randomize_lora(ours)
    lora = _dequantized_base(model_type)
    apply_method(lora, {"name": "lora", "r": 2, "alpha": 16, "targets": report.config["targets"]})
    lora.load_state_dict({k: v for k, v in ours.state_dict().items() if ".lora_" in k or "classifier" in k},
                         strict=False)
    assert_close(outputs(ours, model_type), outputs(lora, model_type))
    assert report.params.trainable_paper == paper_params(tiny_model(model_type, layers=BLOCKS), report.config)
    assert 4.1 < frozen_weight_bits(ours) < 4.3


def test_qlora_trains_lora_only_and_declares_no_merge():
    model = tiny_model("roberta")
    apply_method(model, {"name": "qlora", "backend": "torch"})
    model.train()
    model(input_ids=torch.tensor([[5, 6, 7]])).logits.sum().backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads and all(".lora_" in n or n.startswith("classifier.") for n in grads)
    assert "merge" not in capabilities("qlora")
    with pytest.raises(UnsupportedCapabilityError, match="merge"):
        get_method("qlora").merge(model)


def test_qlora_exports_a_lora_adapter_of_the_quantized_base(tmp_path):
    from peft import PeftModel
    ours = tiny_model("roberta", layers=BLOCKS)
    apply_method(ours, {"name": "qlora", "r": 2, "backend": "torch"})
    randomize_lora(ours)
    get_method("qlora").export_peft(ours, tmp_path, "tiny-roberta")
    loaded = PeftModel.from_pretrained(_dequantized_base("roberta"), tmp_path).eval()
    assert_close(outputs(loaded, "roberta"), outputs(ours, "roberta"))


@pytest.mark.parametrize("option, match", [({"block_size": 48}, "block_size=48"), ({"backend": "gptq"}, "backend="),
                                           ({"double_quant": "yes"}, "double_quant=")])
def test_bad_options(option, match):
    from lora_repro.methods import MethodConfigError
    with pytest.raises(MethodConfigError, match=match):
        apply_method(tiny_model("roberta"), {"name": "qlora", **option})


@pytest.mark.skipif(bitsandbytes_available(), reason="bitsandbytes is importable here")
def test_bitsandbytes_backend_is_refused_without_it():
    from lora_repro.methods import MethodConfigError
    with pytest.raises(MethodConfigError, match="bitsandbytes"):
        apply_method(tiny_model("roberta"), {"name": "qlora", "backend": "bitsandbytes"})


@pytest.mark.skipif(not bitsandbytes_available(), reason="needs bitsandbytes and a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("double_quant", [True, False])
def test_reference_dequantizes_as_bitsandbytes(dtype, double_quant):
    from lora_repro.methods.nf4 import dequantize_bitsandbytes, nf4_bitsandbytes
    torch.manual_seed(0)
    w = (torch.randn(1024, 768) * 0.02).to(dtype).cuda()
    ours = dequantize_nf4(quantize_nf4(w, 64, double_quant), dtype)
    theirs = dequantize_bitsandbytes(*nf4_bitsandbytes(w, 64, double_quant))
    assert theirs.shape == ours.shape and theirs.dtype == dtype
    # codes may differ only where a value sits on a midpoint up to rounding of x * (1/absmax)
    assert (ours != theirs).float().mean() < 1e-4
    packed, _ = nf4_bitsandbytes(w, 64, double_quant)      # the same codes, packed the same way
    assert (quantize_nf4(w, 64, double_quant).packed == packed.reshape(-1)).float().mean() > 1 - 1e-4


@pytest.mark.skipif(not bitsandbytes_available(), reason="needs bitsandbytes and a CUDA device")
def test_bitsandbytes_backend_equals_reference_model():
    ours = copy.deepcopy(tiny_model("roberta")).cuda()
    ref = copy.deepcopy(ours)
    apply_method(ours, {"name": "qlora", "backend": "bitsandbytes"})
    apply_method(ref, {"name": "qlora", "backend": "torch"})
    ids = torch.tensor([[5, 6, 7, 8]]).cuda()
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids=ids).logits, ref(input_ids=ids).logits, rtol=1e-3, atol=1e-4)
