import pytest

from lora_repro.methods import MethodConfigError, apply_method, count_params
from tests.helpers import BLOCKS, tiny_model


def test_ft_trains_everything(arch_type):
    model = tiny_model(arch_type, layers=BLOCKS)
    rep = apply_method(model, "ft")
    assert rep.params.trainable == rep.params.total == sum(p.numel() for p in model.parameters())


def test_bitfit_trains_only_biases_and_head(arch_type):
    model = tiny_model(arch_type, layers=BLOCKS)
    apply_method(model, {"name": "bitfit"})
    for name, p in model.named_parameters():
        body = name.startswith(model.base_model_prefix + ".")
        assert p.requires_grad == (name.endswith("bias") or not body), name


def test_ft_top2_trains_last_two_blocks(arch_type):
    model = tiny_model(arch_type, layers=BLOCKS)
    rep = apply_method(model, {"name": "ft_top2"})
    trained = {n for n, p in model.named_parameters() if p.requires_grad and n.startswith(model.base_model_prefix)}
    assert trained and all((".1." in n or ".2." in n) for n in trained)
    assert rep.params.trainable_paper == sum(p.numel() for n, p in model.named_parameters() if n in trained)


def test_unknown_method_names_valid_choices():
    with pytest.raises(MethodConfigError, match=r"unknown method 'lorra'.*valid methods: .*ft"):
        apply_method(tiny_model("roberta", layers=BLOCKS), "lorra")


def test_unknown_option_is_an_error_before_any_change():
    model = tiny_model("roberta", layers=BLOCKS)
    before = count_params(model)
    with pytest.raises(MethodConfigError, match=r"unknown option.*'rank'"):
        apply_method(model, {"name": "ft_top2", "rank": 3})
    assert count_params(model) == before
