"""A logger never loses a run (W&B errors warn once, the run goes on), a resumed run is one W&B run, and a record
says where and how it ran (SLURM job, array task, host, restarts, resumed-from step) without changing run ids."""
import logging

import pytest

from lora_repro import records
from lora_repro.run import cluster, wandb_logger


class DeadServiceRun:
    """A wandb Run whose service was killed (what SLURM's SIGTERM to the whole job does)."""

    def __init__(self):
        self.calls = []
        self.summary = self

    def _dead(self, *a, **k):
        self.calls.append(a)
        raise ConnectionResetError("Connection lost")

    log = update = finish = mark_preempting = _dead


def test_wandb_errors_warn_once_and_the_run_goes_on(caplog):
    wb = wandb_logger.WandbLogger(DeadServiceRun())
    with caplog.at_level(logging.WARNING, logger="lora_repro.wandb"):
        for step in range(5):
            wb.log({"train/loss": 1.0}, step=step)                    # would raise ConnectionResetError before
        wb.finish_with({"status": "finished", "metrics": {"accuracy": 50.0}, "main_metric": "accuracy"})
    warnings = [r for r in caplog.records if "W&B" in r.getMessage()]
    assert len(warnings) == 1 and "ConnectionResetError: Connection lost" in warnings[0].getMessage()
    assert len(wb.run.calls) == 1                                     # disabled after the first error


def test_wandb_start_failure_is_a_warning_not_a_lost_run(monkeypatch, tmp_path, caplog):
    import wandb

    def broken_init(**kwargs):
        raise RuntimeError("wandb-core did not start")
    monkeypatch.setattr(wandb, "init", broken_init)
    with caplog.at_level(logging.WARNING, logger="lora_repro.wandb"):
        assert wandb_logger.start({"name": "wandb"}, {"seed": 1}, "abc", str(tmp_path)) is None
    assert "W&B could not start" in caplog.text


def test_wandb_run_is_the_run_id_resumed_grouped_and_tagged(monkeypatch, tmp_path):
    import wandb

    seen = {}
    monkeypatch.setattr(wandb, "init", lambda **kw: seen.update(kw) or object())
    config = {"model": {"name": "tiny-roberta"}, "task": {"name": "glue/rte"}, "method": {"name": "lora"}, "seed": 3}
    wandb_logger.start({"name": "wandb"}, config, "0123456789abcdef", str(tmp_path), preset="table2",
                       where={"job_id": "7_1", "restarts": 1})
    assert seen["id"] == "0123456789abcdef" and seen["resume"] == "allow"     # one W&B run across requeues
    assert seen["group"] == "table2" and seen["job_type"] == "train"
    assert seen["tags"] == ["table2", "tiny-roberta", "glue/rte", "lora", "seed=3"]
    assert seen["config"]["where"] == {"job_id": "7_1", "restarts": 1}
    wandb_logger.start({"name": "wandb", "group": "mine"}, config, "x", str(tmp_path), preset="table2")
    assert seen["group"] == "mine"                                   # logger.group wins when set


def test_where_reads_slurm_array_task_restarts_and_host():
    env = {"SLURM_JOB_ID": "12", "SLURM_ARRAY_JOB_ID": "9", "SLURM_ARRAY_TASK_ID": "3", "SLURM_RESTART_COUNT": "2"}
    w = cluster.where(env)
    assert (w["job_id"], w["array_task"], w["restarts"]) == ("9_3", 3, 2) and w["host"]
    assert cluster.where({"SLURM_JOB_ID": "12"})["job_id"] == "12"
    assert cluster.where({}) | {"host": None} == {"job_id": None, "array_task": None, "host": None, "restarts": 0}


def test_job_label_says_which_run():
    config = {"model": {"name": "roberta-base"}, "task": {"name": "glue/rte"}, "method": {"name": "lora"}, "seed": 1}
    assert cluster.job_label(config, "abcd", "table2") == "table2:roberta-base/glue-rte/lora/s1:abcd"
    assert cluster.name_slurm_job("x", {}) is False                   # outside SLURM nothing is renamed


@pytest.mark.parametrize("field", ["job_id", "array_task", "host", "restarts", "resumed_from_step"])
def test_where_fields_are_described_and_old_records_stay_valid(field):
    """Each field says what it means; a record written before they existed is still well formed (and run ids
    hash the config only: tests/run/test_record_pin.py pins them)."""
    assert records.RECORD_SCHEMA[field] and field not in records.RECORD_FIELDS
