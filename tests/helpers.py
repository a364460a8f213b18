"""Helpers the tests share (imported as `from tests.helpers import ...`; conftest.py holds fixtures only).

Tiny models take the project's one tiny shape (lora_repro.models.TINY_OVERRIDES, as conf/model/tiny-*.yaml)
with the tests' small vocabulary; a test that needs more blocks than the shape's two (ft_top2, AdapterDrop,
per-block pins) asks for them with `layers=`.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lora_repro import records

REPO = Path(__file__).resolve().parent.parent
TEST_VOCAB = 120      # smaller than any real tokenizer: fast tests; vocab is not part of the tiny shape
TEST_POSITIONS = 64   # nor are positions: tests of prefix lengths pin "no room" at 64
ARCH_TYPES = ["roberta", "bert", "deberta-v2", "gpt2"]
BLOCKS = 3   # for surgery tests that need more blocks than the tiny shape's 2 (ft_top2, AdapterDrop, per-block pins)
_LAYER_KEY = {"gpt2": "n_layer"}
_POSITION_KEYS = {"gpt2": ("n_positions", "n_ctx")}


# --- tiny models ---------------------------------------------------------------------------------------------
def tiny_config(model_type: str, layers: int | None = None):
    """The project's one tiny shape on transformers' defaults for `model_type`, with the tests' small vocabulary
    (`layers` overrides the shape's block count for tests that need more blocks)."""
    from transformers import AutoConfig

    from lora_repro.models import tiny_overrides
    shape = {**tiny_overrides(model_type),
             **dict.fromkeys(_POSITION_KEYS.get(model_type, ("max_position_embeddings",)), TEST_POSITIONS)}
    if layers is not None:
        shape[_LAYER_KEY.get(model_type, "num_hidden_layers")] = layers
    if model_type == "gpt2":
        return AutoConfig.for_model("gpt2", **shape, vocab_size=TEST_VOCAB, bos_token_id=0, eos_token_id=0)
    if model_type == "deberta-v2":
        return AutoConfig.for_model("deberta-v2", **shape, vocab_size=TEST_VOCAB, relative_attention=True,
                                    pos_att_type=["p2c", "c2p"], max_relative_positions=-1,
                                    position_biased_input=False, type_vocab_size=0, pad_token_id=0)
    return AutoConfig.for_model(model_type, **shape, vocab_size=TEST_VOCAB,
                                pad_token_id=1 if model_type == "roberta" else 0)


def tiny_model(model_type: str, seed: int = 0, num_labels: int = 3, layers: int | None = None):
    """A tiny randomly initialised model, head by the project's one rule (lora_repro.models.build)."""
    from lora_repro.models import build
    torch.manual_seed(seed)
    return build(tiny_config(model_type, layers), num_labels=num_labels).eval()


def tiny_batch(model_type: str, batch: int = 2, seq: int = 10, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 100, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    mask[0, -3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def randomize_lora(model, seed=0, std=0.5):
    """B is zero at init; give it values so that the LoRA path shows in the outputs."""
    from lora_repro.methods import lora_layers
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in lora_layers(model):
            for b in layer.lora_B.values():
                b.copy_(torch.randn(b.shape, generator=g) * std)
    return model


def perturb_trainable(model, seed=0):
    """Stand-in for training: move every trainable tensor so that a load that does nothing shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)


def outputs(model, model_type):
    """Logits and the last hidden state (a tiny head's logits alone hardly move)."""
    with torch.no_grad():
        out = model(**tiny_batch(model_type), output_hidden_states=True)
    return torch.cat([out.logits.flatten(), out.hidden_states[-1].flatten()])


def assert_close(a, b, rtol=1e-5):
    """Equal within rtol of the outputs' scale (fp32 rounding differs between fused and merged maths)."""
    assert a.shape == b.shape
    err, scale = float((a - b).abs().max()), float(b.abs().max())
    assert err <= rtol * scale, f"max |diff| {err:.3g} > {rtol} * max |output| {scale:.3g}"


# --- records ---------------------------------------------------------------------------------------------------
def make_record(run_id, *, model="roberta-base", task="glue/mnli", method="lora", seed=1, value=87.0,
                metric="accuracy", status="finished", r=8, alpha=8, targets=("q", "v"), protocol=None,
                metrics=None, created_at="2026-01-01T00:00:00+00:00", params=294912):
    """A finished (or `status`) record as a run writes it, for table and plot tests."""
    config = {"model": {"name": model}, "task": {"name": task}, "method": {"name": method}, "seed": seed}
    if method == "lora":
        config["method"].update(r=r, alpha=alpha, targets=list(targets))
    elif r is not None and method.startswith("adapter"):
        config["method"]["r"] = r
    if protocol:
        config["protocol"] = protocol
    return {
        "run_id": run_id, "created_at": created_at, "git_sha": "x", "model": model, "task": task, "method": method,
        "r": config["method"].get("r"), "alpha": config["method"].get("alpha"),
        "targets": config["method"].get("targets"), "seed": seed, "trainable_params": params,
        "trainable_params_with_head": params + 1000, "total_params": 125_000_000,
        "metrics": metrics if metrics is not None else {metric: value}, "main_metric": metric,
        "peak_vram_bytes": 0, "tokens_per_s": 1.0, "train_wall_s": 1.0, "status": status, "config": config,
    }


def write(tmp_path, recs):
    """Write records into a results dir (atomically, as runs do)."""
    for rec in recs:
        records.write_record(rec, tmp_path)


# --- the train app on fixture data ------------------------------------------------------------------------
SETUPS = {
    "glue": dict(model="tiny-roberta", task="glue/rte", extra=["task.max_length=64"]),
    "e2e": dict(model="tiny-gpt2", task="e2e", extra=["task.max_length=96", "task.max_eval_samples=4",
                                                      "task.generation.num_beams=2", "task.generation.max_new_tokens=8",
                                                      "trainer.epochs=1", "trainer.label_smoothing=0.1",
                                                      "trainer.max_grad_norm=null"]),
}


def overrides(tmp_path, setup, method):
    """Overrides of a tiny run of `setup` (glue: tiny RoBERTa on RTE; e2e: tiny GPT-2) on fixture data."""
    from lora_repro.tasks.fixtures import write_fixture

    s = SETUPS[setup]
    data = tmp_path / "data" / setup
    if not data.exists():
        write_fixture(s["task"], data, n_train=32, n_eval=16)
    return [f"model={s['model']}", f"task={s['task']}", f"method={method}", "trainer=tiny", f"task.data_dir={data}",
            f"results_dir={tmp_path / 'results'}", "progress_bar=false", *s["extra"]]


def compose_cfg(args):
    """The composed config of one run (Hydra's compose API on the project's conf/)."""
    from hydra import compose, initialize_config_dir

    from lora_repro.app import CONF_DIR
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose("config", overrides=args)


def app(args, **env):
    """`python experiments/train.py ARGS` in a fresh process (W&B mode left to the app's default)."""
    environ = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    environ.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **env)
    return subprocess.run([sys.executable, str(REPO / "experiments" / "train.py"), *args], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=300)


def assert_wandb_agrees(rec, results_dir):
    from lora_repro.run.wandb_logger import read_offline_run

    runs = [p for p in (Path(results_dir) / "wandb").glob("offline-run-*")
            if read_offline_run(p)["name"] == rec["run_id"]]
    assert len(runs) == 1, list((Path(results_dir) / "wandb").glob("*"))
    wb = read_offline_run(runs[0])
    summary = wb["summary"]
    for key, value in rec["metrics"].items():
        assert summary[f"metrics/{key}"] == pytest.approx(value), key
    for key in ("trainable_params", "total_params", "peak_vram_bytes", "tokens_per_s", "train_wall_s"):
        assert summary[key] == pytest.approx(rec[key]), key
    assert summary["main_metric_value"] == pytest.approx(rec["metrics"][rec["main_metric"]])
    assert wb["config"]["method"] == rec["config"]["method"] and wb["config"]["seed"] == rec["seed"]


def check_record(rec, setup, method, tmp_path):
    assert rec["status"] == "finished" and rec["method"] == method
    assert rec["task"] == SETUPS[setup]["task"] and rec["model"] == SETUPS[setup]["model"]
    assert rec["main_metric"] in rec["metrics"] and rec["metrics"]["best_epoch"] >= 1
    assert rec["tokens_per_s"] > 0 and rec["train_wall_s"] > 0
    assert rec["trainable_params"] <= rec["trainable_params_with_head"] <= rec["total_params"]
    assert rec["run_id"] == records.run_identity(rec["config"])
    assert (Path(rec["adapter_dir"]) / "adapter.safetensors").is_file()
    with open(Path(rec["adapter_dir"]) / "adapter_config.json") as f:
        assert json.load(f)["name"] == method
    assert_wandb_agrees(rec, tmp_path / "results")       # offline although WANDB_MODE was unset


# --- the Hugging Face caches, laid out as the libraries lay them out (offline tests of run.hub / fetch) ----
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_checkpoint(hub_cache, repo_id, files):
    """A checkpoint in the hub cache's layout (refs/main -> snapshots/<commit>/<files>)."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    for f in files:
        (snapshot / f).write_text("{}")
    return snapshot


def cache_dataset(datasets_cache, repo_id, name):
    """A dataset config prepared by `datasets.load_dataset`, in the datasets cache's layout."""
    d = datasets_cache / repo_id.replace("/", "___") / name / "0.0.0" / "abc123"
    d.mkdir(parents=True)
    (d / "dataset_info.json").write_text(json.dumps({"config_name": name}))
