"""One meaning of "tiny": conf/model/tiny-*.yaml, `bench --tiny` and the tests' tiny models share
lora_repro.models' tiny shape (width, layers, heads, FFN); vocab and positions may differ."""
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lora_repro.app import CONF_DIR
from lora_repro.bench.models import MODELS, load_config
from lora_repro.models import TINY_OVERRIDES, arch_config, arch_values, model_config, shape
from tests.helpers import ARCH_TYPES, tiny_config

TINY_YAMLS = sorted((Path(CONF_DIR) / "model").glob("tiny-*.yaml"))


def _shared(model_type: str) -> dict:
    name = {"roberta": "roberta-base", "deberta-v2": "deberta-v2-xxlarge", "gpt2": "gpt2-medium"}[model_type]
    return shape(arch_config(name, tiny=True))


@pytest.mark.parametrize("path", TINY_YAMLS, ids=lambda p: p.stem)
def test_conf_tiny_models_are_the_shared_overrides(path):
    mcfg = OmegaConf.to_container(OmegaConf.load(path))
    model_type = arch_values(mcfg["arch_config"])["model_type"]
    assert mcfg["overrides"] == TINY_OVERRIDES[model_type]
    assert shape(model_config(mcfg)) == _shared(model_type)


def test_the_shared_shape():
    assert len(TINY_YAMLS) == 3
    encoder = {"width": 32, "layers": 2, "heads": 2, "ffn": 64}
    assert _shared("roberta") == _shared("deberta-v2") == encoder
    assert _shared("gpt2") == {**encoder, "ffn": 128}  # tiny-gpt2.yaml leaves GPT-2's FFN at 4 x width


@pytest.mark.parametrize("name", MODELS)
def test_bench_tiny_is_the_shared_shape(name):
    config = load_config(name, tiny=True)
    assert shape(config) == _shared(config.model_type)


@pytest.mark.parametrize("model_type", [t for t in ARCH_TYPES if t != "bert"])
def test_tests_tiny_has_the_shared_width_heads_ffn(model_type):
    got, want = shape(tiny_config(model_type)), _shared(model_type)
    assert {k: got[k] for k in ("width", "heads", "ffn")} == {k: want[k] for k in ("width", "heads", "ffn")}


@pytest.mark.parametrize("model_type", [t for t in ARCH_TYPES if t != "bert"])
def test_tests_tiny_has_the_shared_layers(model_type):
    assert shape(tiny_config(model_type))["layers"] == _shared(model_type)["layers"]
