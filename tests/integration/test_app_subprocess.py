"""The train app as users run it, in fresh processes: `python experiments/train.py ...` writes its record and
offline W&B run and skips itself when run again; torchrun with two CPU processes writes one record."""
import os
import subprocess
import sys

import pytest

from lora_repro import records
from tests.helpers import REPO, app, check_record, overrides


@pytest.mark.slow
def test_app_subprocess_writes_record_and_offline_wandb_then_skips(tmp_path):
    """`python experiments/train.py ...` for real: GLUE RTE, tiny RoBERTa, full fine-tuning."""
    args = overrides(tmp_path, "glue", "ft")
    out = app(args)
    assert out.returncode == 0, out.stderr[-3000:]
    (rec,), bad = records.load_records(tmp_path / "results")
    assert not bad
    check_record(rec, "glue", "ft", tmp_path)
    assert rec["peak_memory_kind"] == "cpu_rss" and rec["peak_vram_bytes"] > 0
    again = app(args)                                    # same identity: skipped, record untouched
    assert again.returncode == 0 and "skipping" in again.stderr + again.stdout
    assert records.load_records(tmp_path / "results")[0] == [rec]


@pytest.mark.slow
def test_torchrun_two_cpu_processes_write_one_record(tmp_path):
    """DDP through torchrun (gloo on CPU): each rank trains on half the data, only rank 0 writes."""
    args = overrides(tmp_path, "glue", "lora") + ["logger=none"]
    environ = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          str(REPO / "experiments" / "train.py"), *args], cwd=REPO, env=environ,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (rec,), bad = records.load_records(tmp_path / "results")
    assert not bad and rec["status"] == "finished"
    # 32 examples, batch 8, 2 epochs: 4 steps per epoch on one process, 2 per rank on two
    assert rec["steps"] == 4
