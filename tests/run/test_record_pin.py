"""Nothing a user has is invalidated: run ids and a tiny run's record are pinned. The values were taken
from main @ 68f5b40, before the package was restructured. A change that moves a run id (existing results
would no longer be skipped or tabled) or changes a pinned number fails here."""
import hashlib

import pytest
from hydra import compose, initialize_config_dir

from lora_repro.app import CONF_DIR
from lora_repro.run import plain_config, run, run_id_of
from lora_repro.tasks.fixtures import write_fixture

PINNED = {
    "glue": dict(
        args=["model=tiny-roberta", "task=glue/rte", "method=lora", "trainer=tiny", "task.max_length=64"],
        data="/tmp/pin/a/data/glue/rte", run_id="b10fb8e2998b977d", trainable_params=2048,
        trainable_params_with_head=3170, total_params=1001218, steps=8,
        metrics={"accuracy": 50.0, "train_loss": 0.6939383745193481, "best_epoch": 1}),
    "e2e": dict(
        args=["model=tiny-gpt2", "task=e2e", "method=lora", "trainer=tiny", "task.max_length=96",
              "task.max_eval_samples=4", "task.generation.num_beams=2", "task.generation.max_new_tokens=8",
              "trainer.epochs=1"],
        data="/tmp/pin/a/data/e2e", run_id="a1314eb27ef602df", trainable_params=2048,
        trainable_params_with_head=2048, total_params=1012416, steps=4, metrics=None),
}
CONTROL = ["logger=none", "progress_bar=false"]
# Fields every finished record of main @ 68f5b40 carried; a record may gain fields, never lose one.
RECORD_FIELDS_68F5B40 = {
    "adapter_dir", "alpha", "config", "created_at", "git_sha", "history", "main_metric", "method", "method_config",
    "metrics", "model", "peak_memory_kind", "peak_vram_bytes", "precision", "r", "run_id", "seed", "status", "steps",
    "targets", "task", "tokens_per_s", "total_params", "train_wall_s", "trainable_params",
    "trainable_params_with_head"}
# (number of jobs, first job's run id, sha256 of every run id joined by commas, first 16 hex digits)
# Changed on purpose by issue 11 (fidelity review), so those runs are new runs:
# - table2 / table2_from_mnli: every cell states its global batch (trainer.global_batch_size; the authors' scripts'
#   per-GPU batch x GPUs by default), DeBERTa LoRA sets Table 10's cls_dropout, LoRA† MNLI/SST-2/CoLA are LoRA's
#   runs, and the copied (*) rows moved to table2_baselines (+_from_mnli); 68f5b40: (515, 27826a345cd7e352,
#   8f60c6f56a697c57) and (45, f8a2236fea91d7d5, 6eae5e29636002f8).
# - table2_baselines: the RoBERTa FT cells follow fairseq's GLUE recipe (their ids changed); BitFit, AdptD and
#   DeBERTa FT MNLI/SST-2/CoLA/QNLI/QQP keep theirs. table2_baselines_from_mnli: DeBERTa FT MRPC/RTE/STS-B start
#   from the MNLI FT run (new ids).
# - table3: eval_epochs last (the final checkpoint, no selection on the test set) and, on the authors' rows, no
#   HF GPT-2 body dropout; 68f5b40: (36, 1a1a0b00e66b9c60, 19ae8a9f5f5bd8c5).
# - the authors' adapters (adapter_h: swish, authors' init and placement; adapter_p: authors' init and placement)
#   move the AdptH/AdptP cells of table2, table3, table4 and the demo; table3's PreLayer row is prefix_tuning.
PRESETS_68F5B40 = {
    "table2": (260, "c7d0dce888e0b949", "1f0080aab13a1a2e"),
    "table2_from_mnli": (45, "78d792b08a067c47", "b73d50c3a9a9088f"),
    "table2_baselines": (225, "cbc3465c73668990", "f5581f674d373ae8"),
    "table2_baselines_from_mnli": (15, "31e0b18681b5be15", "a8870b24c7532bfd"),
    "table3": (36, "5cf247c5d70e666b", "141eee36645653f7"),
    "table4": (72, "7307887ed1d978d6", "7ca8d8b35562fcac"),
    "table5": (42, "a2da17d83fd307ec", "d7307a084f5f7cb6"),
    "table6": (90, "7b406e75e60fe5f4", "418a9a0fa1f7c990"),
    # issue 11A moved it (adapter_h/adapter_p defaults; then (48, "10c2026584a41950", "4c7173e02c13ecfb")); issue 13
    # on purpose: the tiny pipeline check's results_dir is results/demo-tiny (results/demo is the MiniLM demo's), and
    # its fixture data_dir follows it
    "demo": (48, "f84c5ae306f4447f", "5ea4eb72ddbf8626"),
}
# Presets added after 68f5b40, pinned from their introduction (issue 13: the MiniLM demo, `make demo`).
PRESETS_ADDED = {
    "minilm_demo": (8, "3bcbb8bcbacf37fd", "4c190d31e011aa92"),
    "minilm_demo_ranks": (5, "a79aa71376de1b39", "dc8fe3afe86f9ec2"),
    # added with LoRA's successors (issue 14); its LoRA cells are Table 2's / Table 3's runs
    "successors": (315, "c7d0dce888e0b949", "67ffbd639d2d626b"),
}


def _compose(args):
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose("config", overrides=args)


@pytest.mark.parametrize("setup", sorted(PINNED))
def test_a_tiny_runs_identity_is_what_it_was_before_the_restructure(setup):
    pin = PINNED[setup]
    cfg = _compose([*pin["args"], f"task.data_dir={pin['data']}", "results_dir=/elsewhere", *CONTROL])
    assert run_id_of(plain_config(cfg)) == pin["run_id"]


@pytest.mark.parametrize("setup", sorted(PINNED))
def test_a_tiny_runs_record_is_what_it_was_before_the_restructure(setup, tmp_path):
    pin = PINNED[setup]
    data = tmp_path / "data"
    write_fixture(pin["args"][1].split("=", 1)[1], data, n_train=32, n_eval=16)
    rec = run(_compose([*pin["args"], f"task.data_dir={data}", f"results_dir={tmp_path / 'results'}", *CONTROL]))
    assert rec["status"] == "finished"
    assert RECORD_FIELDS_68F5B40 <= set(rec), RECORD_FIELDS_68F5B40 - set(rec)
    for key in ("trainable_params", "trainable_params_with_head", "total_params", "steps"):
        assert rec[key] == pin[key], key
    if pin["metrics"] is not None:
        assert rec["metrics"] == pytest.approx(pin["metrics"], rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS_68F5B40 | PRESETS_ADDED))
def test_every_preset_job_keeps_its_run_id(preset):
    from lora_repro.sweeps.compose import preset_jobs

    jobs = preset_jobs(preset)
    ids = [j.run_id for j in jobs]
    digest = hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]
    assert (len(ids), ids[0], digest) == (PRESETS_68F5B40 | PRESETS_ADDED)[preset]
