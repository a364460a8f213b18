"""The Hydra app end to end, offline on CPU: tiny models on fixture data in the hub schema, one GLUE
task (tiny RoBERTa) and one generation task (tiny GPT-2 on E2E), each with full fine-tuning and a
parameter-efficient method; the record and the offline W&B run both exist and agree. Config errors
stop the run before any model is loaded, with a message naming the key, the value and what is allowed."""
import os
from pathlib import Path

import pytest

from lora_repro.run import RunConfigError, run, validate
from tests.helpers import app, check_record, compose_cfg, overrides

PEFT = "lora"


@pytest.mark.slow
@pytest.mark.parametrize("setup,method", [("e2e", "ft"), ("glue", PEFT), ("e2e", PEFT)])
def test_runs_through_hydra_compose(tmp_path, monkeypatch, setup, method):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    args = overrides(tmp_path, setup, method) + (["method.r=4", "method.targets=[q,v]"] if method == "lora" else [])
    rec = run(compose_cfg(args))
    check_record(rec, setup, method, tmp_path)
    assert os.environ["WANDB_MODE"] == "offline"
    if method != "ft":
        assert 0 < rec["trainable_params"] < rec["total_params"] / 20
    if method == "lora":
        from safetensors.torch import load_file
        keys = load_file(str(Path(rec["adapter_dir"]) / "adapter.safetensors"))
        assert any(".lora_A.q" in k for k in keys) and any(".lora_B.v" in k for k in keys)


@pytest.mark.parametrize("bad,match", [
    ("trainer.lr=0", r"trainer.lr=0 is invalid; allowed: a finite number > 0"),
    ("trainer.batch_size=0", r"trainer.batch_size=0 is invalid; allowed: an integer > 0"),
    ("trainer.epochs=-1", r"trainer.epochs=-1 is invalid"),
    ("trainer.precision=fp8", r"trainer.precision='fp8' is invalid; allowed: \['auto', 'fp32', 'bf16', 'fp16'\]"),
    ("task.data_dir=/no/such/dir", r"task.data_dir='/no/such/dir' is invalid; allowed: an existing directory"),
    pytest.param("method.r=0", r"\br\b.*0"),
    pytest.param("method.targets=[q,z]", r"'z'.*q"),
])
def test_bad_values_are_named_before_any_compute(tmp_path, bad, match):
    cfg = compose_cfg(overrides(tmp_path, "glue", "lora" if bad.startswith("method") else "ft") + [bad])
    with pytest.raises(RunConfigError, match=match):
        validate(cfg)


def test_unknown_method_option_and_encoder_on_generation_task(tmp_path):
    with pytest.raises(RunConfigError, match=r"unknown option\(s\) \['rank'\]"):
        validate(compose_cfg(overrides(tmp_path, "glue", "bitfit") + ["+method.rank=4"]))
    with pytest.raises(RunConfigError, match="needs a decoder-only model"):
        validate(compose_cfg(overrides(tmp_path, "e2e", "ft") + ["model=tiny-roberta"]))


def test_app_reports_config_errors_and_unknown_groups_without_running(tmp_path):
    out = app(overrides(tmp_path, "glue", "ft") + ["task.data_dir=/no/such/dir", "logger=none"])
    assert out.returncode == 2 and "config error: task.data_dir='/no/such/dir' is invalid" in out.stderr
    assert not (tmp_path / "results" / "checkpoints").exists()
    out = app(["model=roberta-huge", "logger=none", f"results_dir={tmp_path / 'results'}"])
    assert out.returncode == 2 and "model/roberta-huge" in out.stderr   # Hydra refused it: a config error too
    out = app(overrides(tmp_path, "glue", "ft") + ["method.rank=8"])
    assert out.returncode == 2 and "method.rank" in out.stderr


def test_decoder_model_on_an_encoder_task_and_bad_eval_epochs(tmp_path):
    with pytest.raises(RunConfigError, match="needs an encoder model"):
        validate(compose_cfg(overrides(tmp_path, "glue", "ft") + ["model=tiny-gpt2"]))
    with pytest.raises(RunConfigError, match="trainer.eval_epochs='some' is invalid"):
        validate(compose_cfg(overrides(tmp_path, "glue", "ft") + ["trainer.eval_epochs=some"]))
    validate(compose_cfg(overrides(tmp_path, "e2e", "lora") + ["trainer=gpt2_e2e"]))


def test_unreachable_pretrained_model_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RunConfigError, match="model.pretrained='/no/such/checkpoint': cannot load its config"):
        validate(compose_cfg(overrides(tmp_path, "glue", "ft") + ["model=roberta-base",
                                                                  "model.pretrained=/no/such/checkpoint"]))


ALL_METHODS = ["ft", "ft_top2", "bitfit", "adapter_h", "adapter_l", "adapter_p", "adapter_d", "prefix_embed",
               "prefix_layer", "lora"]
METHOD_ARGS = {"ft_top2": ["method.layers=1"], "adapter_d": ["method.drop=1"],
               "prefix_tuning": ["method.prefix_len=3", "method.mid_dim=16"]}


@pytest.mark.slow
@pytest.mark.parametrize("setup,method", [("glue", m) for m in ALL_METHODS] +
                         [("e2e", m) for m in ("adapter_h", "prefix_layer", "prefix_tuning")])
def test_every_method_trains_through_the_shared_trainer(tmp_path, setup, method):
    args = overrides(tmp_path, setup, method) + METHOD_ARGS.get(method, []) + ["logger=none", "trainer.epochs=1"]
    rec = run(compose_cfg(args))
    assert rec["status"] == "finished" and rec["method_config"]["name"] == method
    assert rec["metrics"]["train_loss"] > 0 and rec["main_metric"] in rec["metrics"]
    assert 0 < rec["trainable_params"] <= rec["total_params"]
