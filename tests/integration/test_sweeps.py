"""End to end through the train app: the demo preset's two stages on fixture data, tables, figures and
the notebook from its records, a re-run that launches nothing new, and a sweep through submitit's LOCAL
executor. Narrowed to a few runs on the command line (the full demo is `make demo`)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (ROOT / "experiments" / "train.py").exists(),
                                                   reason="the train app (experiments/train.py) is not merged yet")]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}


def train(*overrides, results):
    proc = subprocess.run([sys.executable, "experiments/train.py", "-m", *overrides, f"results_dir={results}"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def write_fixtures(results, tasks):
    from lora_repro.tasks.fixtures import write_fixture
    for task in tasks:
        write_fixture(task, results / "fixtures" / task)


def finished(results):
    recs = [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]
    return {r["run_id"]: r for r in recs if r["status"] == "finished"}


def test_demo_preset_end_to_end(tmp_path):
    from lora_repro import report
    from lora_repro.report import plots

    write_fixtures(tmp_path, ["glue/mnli", "glue/rte"])
    train("+experiment=demo", "+experiment/demo=ft,lora", "task=glue/mnli,glue/rte", "seed=1", results=tmp_path)
    stage1 = finished(tmp_path)
    assert len(stage1) == 4
    train("+experiment=demo_from_mnli", "task=glue/rte", "seed=1", results=tmp_path)
    recs = finished(tmp_path)
    assert len(recs) == 5
    (dependent,) = [r for r in recs.values() if r["config"].get("method_init_from")]
    (mnli_lora,) = [r for r in stage1.values() if r["task"] == "glue/mnli" and r["method"] == "lora"]
    assert dependent["config"]["method_init_from"] == str(tmp_path / "checkpoints" / mnli_lora["run_id"] / "adapter")

    assert report.main(["--results", str(tmp_path)]) == 0
    md = (tmp_path / "tables" / "table2.md").read_text()
    assert "tiny-roberta" in md and "[init from another run's adapter]" in md
    figures = plots.write_figures(tmp_path)
    assert any(p.name.startswith("budget_tiny-roberta_glue-rte") for p in figures)
    assert all(p.stat().st_size > 0 for p in figures)

    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(str(ROOT / "notebooks" / "results.ipynb"), as_version=4)
    os.environ["LORA_REPRO_RESULTS"] = str(tmp_path)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        del os.environ["LORA_REPRO_RESULTS"]
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "5 well-formed records" in text

    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")}
    log = train("+experiment=demo", "+experiment/demo=ft,lora", "task=glue/mnli,glue/rte", "seed=1", results=tmp_path)
    assert "sweep summary: 4 jobs: 0 done, 4 skipped" in log     # finished runs are not even launched
    assert "4 finished (not launched)" in log
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")} == mtimes


def test_sweep_through_submitit_local_executor(tmp_path):
    write_fixtures(tmp_path, ["glue/rte"])
    train("+experiment=demo", "+experiment/demo=lora,bitfit", "task=glue/rte", "seed=2", "hydra/launcher=local",
          results=tmp_path)
    recs = finished(tmp_path)
    assert sorted(r["method"] for r in recs.values()) == ["bitfit", "lora"]
    folders = sorted((tmp_path / "submitit").iterdir())  # the executor's job folders
    assert folders
    log = train("+experiment=demo", "+experiment/demo=lora,bitfit", "task=glue/rte", "seed=2", "hydra/launcher=local",
                results=tmp_path)
    assert "not submitting 2 of 2 job(s)" in log and "0 done, 2 skipped" in log   # finished runs: no new job
    assert sorted((tmp_path / "submitit").iterdir()) == folders


def test_one_failing_run_does_not_stop_the_sweep(tmp_path):
    """The train app lets a multirun go on past a run that fails at run time (it logs the error, writes a
    failed record and the job returns normally): here the first job's learning rate is valid but diverges (a
    NaN loss at step 2). (A job whose config or data is invalid instead aborts the whole sweep before launching:
    tests/run/test_reliability.py.)"""
    write_fixtures(tmp_path, ["glue/rte"])
    proc = subprocess.run([sys.executable, "experiments/train.py", "-m", "+experiment=demo", "+experiment/demo=lora",
                           "task=glue/rte", "trainer.lr=1e30,1e-3", "seed=1", f"results_dir={tmp_path}"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    recs = finished(tmp_path)
    assert [r["config"]["trainer"]["lr"] for r in recs.values()] == [1e-3], proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "NonFiniteLossError" in proc.stdout + proc.stderr
    # the sweep went on, then exits 1 so that make and CI see the failure
    assert proc.returncode == 1 and "sweep summary: 2 jobs: 1 done, 0 skipped, 1 failed" in proc.stdout
