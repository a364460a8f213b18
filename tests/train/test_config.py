"""Trainer keys, defaults and checks have one home (train/config.py): conf/trainer/default.yaml equals it, and
`fit` called without the YAML (bench, a notebook, a test) trains exactly as an app run with the YAML does."""
import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from lora_repro.checks import Problems
from lora_repro.train.config import OPTIONAL_KEYS, TrainerConfig

DEFAULT_YAML = Path(__file__).resolve().parents[2] / "conf" / "trainer" / "default.yaml"


def test_trainer_config_defaults_equal_conf_trainer_default_yaml():
    from_yaml = yaml.safe_load(DEFAULT_YAML.read_text())
    ours = dataclasses.asdict(TrainerConfig())
    assert set(from_yaml) == set(ours) - set(OPTIONAL_KEYS)
    for key, value in from_yaml.items():
        want = tuple(value) if isinstance(value, list) else value
        assert ours[key] == want, key


def test_fit_without_the_yaml_trains_like_the_app(tmp_path):
    """main @ 68f5b40's loop had its own defaults (adam_eps 1e-8, no weight decay, no clipping, no warmup): a
    partial trainer config trained differently from the same run through the app."""
    from lora_repro.methods import apply_method
    from lora_repro.models import load_model
    from lora_repro.tasks import get_task
    from lora_repro.tasks.fixtures import write_fixture
    from lora_repro.train import fit

    task = get_task("glue/rte")
    write_fixture("glue/rte", tmp_path, n_train=32, n_eval=8)
    data = task.load(tmp_path)
    spec = yaml.safe_load((DEFAULT_YAML.parent.parent / "model" / "tiny-roberta.yaml").read_text())
    partial = {"lr": 1e-2, "epochs": 1, "batch_size": 8}
    full = {**yaml.safe_load(DEFAULT_YAML.read_text()), **partial}

    def losses(trainer_cfg):
        torch.manual_seed(0)
        model, tokenizer = load_model(spec, task)
        apply_method(model, "bitfit")
        result = fit(model, tokenizer, task, data, trainer_cfg, seed=0, decoder=False, max_length=64,
                     progress_bar=False)
        return [h["train_loss"] for h in result.history]

    assert losses(partial) == losses(full)


def test_unknown_or_bad_trainer_options_are_named():
    p = Problems()
    TrainerConfig.check({"lr": 0, "epochs": 1, "batch_size": 4, "lrr": 1e-3, "adam_eps": -1}, p)
    text = "\n".join(p)
    assert "trainer=['lrr'] is invalid" in text and "trainer.lr=0" in text and "trainer.adam_eps=-1" in text
    with pytest.raises(ValueError, match="unknown trainer option"):
        TrainerConfig.from_mapping({"lrr": 1})
