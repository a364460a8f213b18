"""The cost planner: its GPU-hour arithmetic, and the runs it lists with finished ones counted by identity."""
import math
from pathlib import Path

import pytest

from lora_repro import records
from lora_repro.sweeps import plan as planner
from lora_repro.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]
needs_app_conf = pytest.mark.skipif(not (ROOT / "conf" / "config.yaml").exists(),
                                    reason="conf/config.yaml (the train app's config) is not merged yet")


def config(model="roberta-base", method="lora", task="glue/rte", epochs=10, batch=32, max_length=512,
           precision="fp32", **task_extra):
    return {"model": {"name": model}, "method": {"name": method},
            "task": {"name": task, "max_length": max_length, **task_extra},
            "trainer": {"epochs": epochs, "batch_size": batch, "grad_accum": 1, "precision": precision}}


def test_gpu_hours_follow_the_stated_model():
    c = config()
    rte = get_task("glue/rte")
    steps = math.ceil(rte.train_examples / 32) * 10
    step_tokens = 32 * rte.avg_tokens * planner.PADDING
    params, layers = planner.model_size("roberta-base")
    step_s = max(step_tokens * 4 * params / planner.EFFECTIVE_FLOPS["fp32"], planner.MIN_STEP_S_PER_LAYER * layers)
    assert planner.gpu_hours(c) == pytest.approx(steps * step_s / 3600 * 1.1)
    # full fine-tuning costs 6N per token instead of 4N; the launch-bound floor applies to small steps
    big = config(batch=4096, method="ft")
    assert planner.gpu_hours(big) > planner.gpu_hours(config(batch=4096))
    assert planner.gpu_hours(config(max_length=16)) <= planner.gpu_hours(c)
    assert planner.gpu_hours(config(task="glue/unknown")) is None
    assert planner.gpu_hours(config(model="no-such-model")) is None


def test_model_sizes_come_from_the_model_configs():
    """Parameters counted on the meta device from conf/model/<name>.yaml (hub checkpoints from their shipped
    config JSON, offline), layers from num_hidden_layers: no hand-written table per model name."""
    assert planner.model_size("roberta-base") == (124_647_170, 12)     # incl. a 2-label head; the paper says 125M
    assert planner.model_size("gpt2-medium") == (354_823_168, 24)
    assert planner.model_size({"name": "minilm"})[1] == 6
    assert planner.model_size("deberta-v2-xxlarge")[1] == 48
    assert planner.model_size("tiny-roberta")[1] == 2


def test_train_examples_are_the_tasks_facts():
    for name in ("glue/mnli", "e2e", "samsum"):
        cls = get_task(name)
        assert planner.train_examples({"name": name}) == cls.train_examples
        assert planner.gpu_hours(config(model="gpt2-medium", task=name)) is not None


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_train_examples_count_the_train_file_in_any_format(tmp_path, fmt):
    """The data_dir's train file is found by `Task.split_files` and counted in every format `Task.load` reads
    (the old planner counted train.jsonl only; csv/parquet fell back to the hub's 14,732)."""
    from lora_repro.tasks.fixtures import write_fixture
    write_fixture("samsum", tmp_path, n_train=7, n_eval=3, fmt=fmt)   # csv dialogues hold quoted line breaks
    assert planner.train_examples({"name": "samsum", "data_dir": str(tmp_path)}) == 7
    assert planner.train_examples({"name": "samsum", "data_dir": str(tmp_path), "max_train_samples": 5}) == 5


def test_train_examples_count_a_json_list(tmp_path):
    (tmp_path / "train.json").write_text('[{"a": 1}, {"a": 2}, {"a": 3}]')
    assert planner.train_examples({"name": "glue/rte", "data_dir": str(tmp_path)}) == 3


def test_default_precision_is_priced_as_what_it_runs_in_on_the_h100():
    """`trainer.precision=auto` (the default) trains in bf16 on an H100: it costs what bf16 costs, not fp32's 1.45x
    (SAMSum, GPT-2 M, LoRA, batch 32, measured on main @ 68f5b40: 0.084 GPU-h for auto vs 0.058 for bf16)."""
    samsum = dict(model="gpt2-medium", method="lora", task="samsum", epochs=5, batch=32)
    auto = planner.gpu_hours(config(**samsum, precision="auto"))
    bf16 = planner.gpu_hours(config(**samsum, precision="bf16"))
    assert auto == pytest.approx(bf16)
    assert planner.gpu_hours(config(**samsum, precision="fp32")) > 1.3 * bf16
    no_key = config(**samsum)
    del no_key["trainer"]["precision"]
    assert planner.gpu_hours(no_key) == pytest.approx(bf16)


def test_train_examples_from_data_dir_and_cap(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"a": 1}\n' * 7)
    assert planner.train_examples({"name": "glue/rte", "data_dir": str(tmp_path)}) == 7
    assert planner.train_examples({"name": "glue/mnli", "max_train_samples": 100}) == 100
    assert planner.train_examples({"name": "glue/mnli"}) == 392_702


def test_measured_tokens_per_s_win(monkeypatch):
    monkeypatch.setitem(planner.TOKENS_PER_S_MEASURED, ("roberta-base", "lora"), 1234.0)
    assert planner.tokens_per_s("roberta-base", "lora") == 1234.0
    with pytest.raises(KeyError, match="known"):
        planner.tokens_per_s("no-such-model", "lora")


@needs_app_conf
def test_plan_lists_runs_and_counts_finished_by_identity(tmp_path, capsys):
    from lora_repro.sweeps import compose as sweep

    extra = ["+experiment/demo=lora,ft", "task=glue/mnli,glue/rte", "seed=1", f"results_dir={tmp_path}"]
    jobs = sweep.preset_jobs("demo", extra)
    assert len(jobs) == 4 and len({j.run_id for j in jobs}) == 4
    done = jobs[2]
    records.write_record({
        "run_id": done.run_id, "created_at": records.now_iso(), "git_sha": None, "model": "tiny-roberta",
        "task": done.config["task"]["name"], "method": done.config["method"]["name"], "r": None, "alpha": None,
        "targets": None, "seed": 1, "trainable_params": 1, "total_params": 2, "metrics": {"accuracy": 50.0},
        "main_metric": "accuracy", "peak_vram_bytes": 0, "tokens_per_s": 1.0, "train_wall_s": 1.0,
        "status": "finished", "config": done.config}, tmp_path)
    failed = jobs[0]
    records.write_record({**records.read_record(records.record_path(tmp_path, done.run_id)), "run_id": failed.run_id,
                          "status": "failed", "metrics": {}}, tmp_path)
    assert [j.status for j in jobs] == ["failed", None, "finished", None]
    assert [j.finished for j in jobs] == [False, False, True, False]
    assert planner.main(["--experiment", "demo", "--jobs", *extra]) == 0
    out = capsys.readouterr().out
    assert "+experiment=demo: 4 runs, 1 already finished, 3 to launch (1 of them failed before)" in out
    assert f"[done] {done.run_id}" in out and f"[FAIL] {failed.run_id}" in out and out.count("[todo]") == 2


@needs_app_conf
def test_plan_reports_a_bad_preset(capsys):
    assert planner.main(["--experiment", "no_such_preset"]) == 2
    assert "no_such_preset" in capsys.readouterr().err


@needs_app_conf
def test_plan_states_the_targets_runs_and_the_optional_ones_apart(capsys):
    """`make reproduce-table2 DRY_RUN=1` says how many runs are the authors' rows and how many are optional
    re-runs of copied rows; the optional ones stay out of the total, and each line shows its global batch."""
    assert planner.main(["--experiment", "table3", "--optional", "table2_baselines_from_mnli"]) == 0
    out = capsys.readouterr().out
    assert "this target: 36 runs (36 table3); optional, not run by it: 15 runs (15 table2_baselines_from_mnli)" in out
    assert "+experiment=table2_baselines_from_mnli" not in out       # priced on the optional line only
    line = next(x for x in out.splitlines() if x.strip().startswith("gpt2-medium") and " lora " in x)
    assert line.split()[3] == "8"                                     # the batch column
