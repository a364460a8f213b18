"""One build, one head rule: lora_repro.models.build makes every model; the head follows ARCHS.decoder_only."""
import pytest
import torch

from lora_repro.bench.models import meta_model as bench_meta_model
from lora_repro.methods.arch import ARCHS
from lora_repro.models import ModelConfigError, arch_config, build, head_class, meta_model
from lora_repro.paper.params import _template


class Reg:
    name, kind, num_labels = "reg", "regression", 1


class Gen:
    name, kind, num_labels = "gen", "generation", None


@pytest.mark.parametrize("name", ["roberta-base", "deberta-v2-xxlarge", "gpt2-medium"])
def test_every_builder_uses_the_one_head_rule(name):
    config = arch_config(name)
    want = "ForCausalLM" if ARCHS[config.model_type].decoder_only else "ForSequenceClassification"
    assert head_class(config).__name__.endswith(want)
    for model in (meta_model(config), bench_meta_model(name), _template(name), build(name, device="meta")):
        assert model.device.type == "meta"
        assert type(model).__name__ == type(build(config, device="meta")).__name__
    assert sum(p.numel() for p in bench_meta_model(name).parameters()) == sum(
        p.numel() for p in _template(name).parameters())


def test_build_sets_labels_never_changes_its_config_and_seeds_weights():
    config = arch_config("roberta-base", tiny=True)
    torch.manual_seed(0)
    model = build(config, Reg())
    assert model.num_labels == 1 and model.config.problem_type == "regression" and config.num_labels == 2
    torch.manual_seed(0)
    again = build(config, Reg())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert build(config, num_labels=5, device="meta").num_labels == 5
    with pytest.raises(ModelConfigError, match="needs a decoder-only model"):
        build(config, Gen(), device="meta")
    assert meta_model(config, Gen()).num_labels == 2  # validation reports the task, the meta model never fails


def test_unknown_architecture_names_the_choices():
    with pytest.raises(ModelConfigError, match=r"known names: \[.*'gpt2-medium'.*'roberta-base'"):
        build("roberta-huge")
    with pytest.raises(ModelConfigError, match=r"no tiny shape for model_type 'x'; known: \['bert'"):
        from lora_repro.models import tiny_overrides
        tiny_overrides("x")
