"""Presets and sweeps: the table2 cells copy the paper's hyperparameters, the stages partition the cells,
jobs expand as Hydra's basic sweeper expands them, the SLURM launcher composes, and a stage-2 run starts
from the adapter of the stage-1 MNLI run with the same overrides (found by run identity)."""
import csv
import re
from pathlib import Path

import pytest
import yaml

from lora_repro.sweeps import compose as sweep

ROOT = Path(__file__).resolve().parents[2]
EXP = ROOT / "conf" / "experiment"
HPARAMS = ROOT / "lora_repro" / "paper" / "data" / "hparams_roberta.csv"
needs_app_conf = pytest.mark.skipif(not (ROOT / "conf" / "config.yaml").exists(),
                                    reason="conf/config.yaml (the train app's config) is not merged yet")


def sweep_list(preset: str, key: str) -> list[str]:
    params = yaml.safe_load((EXP / f"{preset}.yaml").read_text())["hydra"]["sweeper"]["params"]
    return [c.strip() for c in str(params[key]).split(",")]


def test_replace_overrides_swaps_same_key_or_appends():
    ov = ["+experiment/table2=roberta-base_lora/mrpc", "seed=3", "+experiment=table2_from_mnli"]
    assert sweep.replace_overrides(ov, ["+experiment/table2=roberta-base_lora/mnli", "x.y=1"]) == [
        "+experiment/table2=roberta-base_lora/mnli", "seed=3", "+experiment=table2_from_mnli", "x.y=1"]
    assert sweep.override_key("++a.b=3") == "a.b" and sweep.override_key("~c") == "c"


def test_expand_sweep_like_hydra_command_line_wins():
    jobs = sweep.expand_sweep({"+experiment/demo": "ft,lora", "task": "glue/mnli,glue/rte", "seed": "1,2"},
                              ["+experiment=demo", "task=glue/rte", "seed=3,4"])
    assert len(jobs) == 2 * 1 * 2
    assert jobs[0] == ["+experiment/demo=ft", "task=glue/rte", "seed=3", "+experiment=demo"]
    assert jobs[-1] == ["+experiment/demo=lora", "task=glue/rte", "seed=4", "+experiment=demo"]


def test_table2_stages_partition_the_cells():
    stages = {p: sweep_list(p, "+experiment/table2") for p in
              ("table2", "table2_from_mnli", "table2_baselines", "table2_baselines_from_mnli")}
    every = [c for cells in stages.values() for c in cells]
    files = sorted(str(p.relative_to(EXP / "table2").with_suffix("")) for p in (EXP / "table2").rglob("*.yaml"))
    assert sorted(every) == files and len(set(every)) == len(every)
    # every row of the paper's Table 2 x its 8 tasks, but LoRA† on MNLI/SST-2/CoLA: LoRA's runs (same settings)
    assert len(files) == 14 * 8 - 3
    for cell in files:
        text = (EXP / "table2" / f"{cell}.yaml").read_text()
        from_mnli = "method_init_from" in text
        assert from_mnli == (cell in stages["table2_from_mnli"] + stages["table2_baselines_from_mnli"])
        copied = re.search(r"_(ft|bitfit|adapter_d_r\d+)/", cell) is not None      # the paper's * rows
        assert copied == (cell in stages["table2_baselines"] + stages["table2_baselines_from_mnli"])
        if from_mnli:
            model_method, task = cell.split("/")
            assert task in ("mrpc", "rte", "stsb") and "dagger" not in model_method
            assert f"'+experiment/table2={model_method}/mnli'" in text


def test_table2_cells_copy_tables_9_and_10():
    rows = [r for r in csv.DictReader(HPARAMS.open()) if r["source"].startswith("arXiv")]
    tasks = {"MNLI": "mnli", "SST-2": "sst2", "MRPC": "mrpc", "CoLA": "cola", "QNLI": "qnli", "QQP": "qqp",
             "RTE": "rte", "STS-B": "stsb"}
    cell_of = {("RoBERTa-base", "LoRA", ""): "roberta-base_lora", ("RoBERTa-large", "LoRA", ""): "roberta-large_lora",
               ("RoBERTa-large", "LoRA", "†"): "roberta-large_lora_dagger",
               ("RoBERTa-large", "AdptP (3M)", "†"): "roberta-large_adapter_p_r64_dagger",
               ("RoBERTa-large", "AdptP (0.8M)", "†"): "roberta-large_adapter_p_r16_dagger",
               ("RoBERTa-large", "AdptH (6M)", "†"): "roberta-large_adapter_h_r64_dagger",
               ("RoBERTa-large", "AdptH (0.8M)", "†"): "roberta-large_adapter_h_r8_dagger",
               ("DeBERTa-XXL", "LoRA", ""): "deberta-v2-xxlarge_lora"}
    checked = 0
    for r in rows:
        row = cell_of[(r["model"], r["method"], r["marker"])]
        shared = row == "roberta-large_lora_dagger" and tasks[r["task"]] in ("mnli", "sst2", "cola")
        cell = yaml.safe_load((EXP / "table2" / ("roberta-large_lora" if shared else row) /   # LoRA's runs, once
                               f"{tasks[r['task']]}.yaml").read_text())
        assert cell["trainer"]["lr"] == pytest.approx(float(r["learning_rate"]))
        gpus = 2 if (row, r["task"]) == ("roberta-base_lora", "CoLA") else 8     # the authors' scripts
        assert cell["trainer"]["batch_size"] == cell["trainer"]["global_batch_size"] == \
            f"${{authors_batch:{int(r['batch_size'])},{gpus}}}"
        if r["model"] == "DeBERTa-XXL":
            assert cell["model"]["overrides"]["cls_dropout"] == pytest.approx(float(r["cls_dropout"]))
        assert cell["trainer"]["epochs"] == int(r["epochs"])
        assert cell["trainer"]["warmup_ratio"] == pytest.approx(float(r["warmup"].split()[-1]))
        assert cell["task"]["max_length"] == int(r["max_seq_len"])
        if r["adapter_bottleneck_r"]:
            assert cell["method"]["r"] == int(r["adapter_bottleneck_r"])
        elif r["model"] != "DeBERTa-XXL":  # DeBERTa: r=16/alpha=32 per SOURCES discrepancy 2
            assert (cell["method"]["r"], cell["method"]["alpha"]) == (int(r["lora_r"]), int(r["lora_alpha"]))
        assert (cell.get("protocol") == "houlsby") == (r["marker"] == "†" and not shared)
        checked += 1
    assert checked == 8 * 8


@needs_app_conf
def test_every_preset_composes_its_first_job():
    with sweep.hydra_context():
        for preset in sorted(p.stem for p in EXP.glob("*.yaml")):
            hcfg = sweep.compose([f"+experiment={preset}"], return_hydra_config=True)
            params = dict(hcfg.hydra.sweeper.params)
            first = [f"{k}={str(v).split(',')[0].strip()}" for k, v in params.items()]
            if any(s.startswith("+experiment/") and "from_mnli" in preset for s in first):
                continue  # needs stage 1's config only to resolve method_init_from; covered below
            cfg = sweep.resolved_config(first + [f"+experiment={preset}"])
            assert cfg["model"]["name"] and cfg["task"]["name"] and cfg["method"]["name"], preset


@needs_app_conf
def test_slurm_launcher_config_composes(monkeypatch):
    monkeypatch.setenv("LORA_SLURM_PARTITION", "gpu-h100")
    monkeypatch.setenv("LORA_SLURM_TIMEOUT_MIN", "720")
    hcfg = sweep.compose(["+experiment=table2", "+experiment/table2=roberta-base_lora/mnli", "hydra/launcher=slurm"],
                         return_hydra_config=True)
    launcher = hcfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.timeout_min, launcher.gpus_per_node) == ("gpu-h100", 720, 1)
    assert launcher.array_parallelism == 32 and launcher.mem_gb == 64 and launcher.cpus_per_task == 8
    local = sweep.compose(["+experiment=demo", "hydra/launcher=local"], return_hydra_config=True).hydra.launcher
    assert local._target_.endswith("LocalLauncher") and local.gpus_per_node == 0


@needs_app_conf
def test_stage2_starts_from_the_stage1_mnli_run_by_identity(tmp_path):
    extra = [f"results_dir={tmp_path}", "seed=3"]
    with sweep.hydra_context():
        dependent = sweep.resolved_config(
            ["+experiment/table2=roberta-large_lora/rte", *extra, "+experiment=table2_from_mnli"])
        mnli = sweep.resolved_config(["+experiment/table2=roberta-large_lora/mnli", *extra, "+experiment=table2"])
        other_seed = sweep.resolved_config(["+experiment/table2=roberta-large_lora/mnli", f"results_dir={tmp_path}",
                                            "seed=4", "+experiment=table2"])
    expected = tmp_path / "checkpoints" / sweep.run_id_of(mnli) / "adapter"
    assert dependent["method_init_from"] == str(expected)
    assert sweep.run_id_of(other_seed) not in dependent["method_init_from"]
    assert re.fullmatch(r"[0-9a-f]{16}", sweep.run_id_of(mnli))
    assert dependent["task"]["name"] == "glue/rte" and mnli["task"]["name"] == "glue/mnli"


def test_init_from_run_outside_a_job_is_a_clear_error():
    with pytest.raises(sweep.SweepError, match="needs the job's overrides"):
        sweep.init_from_run("+experiment/table2=roberta-base_lora/mnli")


def test_preset_cells_use_the_settings_the_tables_match():
    """Every table row's setting (lora_repro.paper.params, through report.specs.table_spec) is what some preset
    cell runs, so a finished sweep fills every row."""
    from lora_repro.report import build, specs

    def cells(table):
        for path in (EXP / f"table{table}").rglob("*.yaml"):
            text = path.read_text()
            method = re.search(r"override /method: (\w+)", text).group(1)
            model = re.search(r"override /model: ([\w-]+)", text)
            opts = yaml.safe_load(text).get("method") or {}
            yield (model.group(1) if model else "gpt2-medium"), method, opts

    for table in (2, 3, 4):
        available = list(cells(table))
        for row in specs.table_spec(table).rows:
            def fits(cell, row=row):
                model, method, opts = cell
                defaults = {"ft_top2": {"layers": 2}}.get(method, {})
                full = {**defaults, **opts}
                return model == row.model and method == row.method and all(
                    k in full and build._opt_equal(v, full[k]) for k, v in row.opts)
            assert any(fits(c) for c in available), (table, row.model, row.label, row.opts)


@needs_app_conf
def test_fast_composition_equals_hydras_full_composition(tmp_path):
    """The planner composes once per set of config choices and applies value overrides afterwards (minutes ->
    seconds); every job's resolved config must still be exactly what a full Hydra composition gives, init
    interpolations, added keys and value sweeps included."""
    jobs = sweep.sweep_overrides(["+experiment=table2_from_mnli", "seed=2,3", "trainer.lr=1e-4,2e-4",
                                  "+experiment/table2=deberta-v2-xxlarge_lora/rte", f"results_dir={tmp_path}",
                                  "+batch_reading=paper"])
    assert len(jobs) == 4
    assert sweep.is_value_override("seed=2") and sweep.is_value_override("+trainer.global_batch_size=3")
    assert not sweep.is_value_override("+experiment/table2=x") and not sweep.is_value_override("model=tiny-gpt2")
    assert not sweep.is_value_override("hydra.launcher.x=1")
    with sweep.hydra_context():
        for overrides in jobs:
            fast = sweep.fast_resolved_config(overrides)
            assert fast == sweep.resolved_config(overrides), overrides
            assert fast["trainer"]["global_batch_size"] == 4 and fast["method_init_from"].startswith(str(tmp_path))


@needs_app_conf
def test_presets_set_the_authors_dropout_and_global_batch():
    """GPT-2 on Table 3's authors' rows has no dropout but LoRA's (examples/NLG/src/model.py); DeBERTa's CLS
    dropout is Table 10's; a Table 2 cell's global batch is the scripts' (per-GPU x GPUs) unless
    +batch_reading=paper, and the planner prices the batch that is used."""
    from lora_repro.models import model_config
    from lora_repro.sweeps.plan import gpu_hours

    with sweep.hydra_context():
        lora3 = sweep.fast_resolved_config(["+experiment/table3=gpt2-medium_lora", "seed=1"])
        ft3 = sweep.fast_resolved_config(["+experiment/table3=gpt2-medium_ft", "seed=1"])
        deb = sweep.fast_resolved_config(["+experiment/table2=deberta-v2-xxlarge_lora/qqp", "seed=1"])
        rb = [sweep.fast_resolved_config(["+experiment/table2=roberta-base_lora/mnli", "seed=1", *extra])
              for extra in ([], ["+batch_reading=paper"])]
    assert lora3["model"]["overrides"] == {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    assert ft3["model"]["overrides"] == {}          # Li & Liang's copied row: HF GPT-2 as they ran it
    arch = {**lora3["model"], "pretrained": None, "arch_config": "gpt2-medium"}
    assert model_config(arch).resid_pdrop == 0.0 and model_config({**arch, "overrides": {}}).resid_pdrop == 0.1
    assert deb["model"]["overrides"] == {"cls_dropout": 0.2}
    assert [(c["trainer"]["batch_size"], c["trainer"]["global_batch_size"]) for c in rb] == [(128, 128), (16, 16)]
    assert gpu_hours(rb[0]) < gpu_hours(rb[1])      # 8x fewer steps: the planner costs the batch used
    with pytest.raises(Exception, match="batch_reading='both'"):
        with sweep.hydra_context():
            sweep.fast_resolved_config(["+experiment/table2=roberta-base_lora/mnli", "+batch_reading=both"])
