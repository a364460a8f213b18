"""Long work shows progress: a bar at a terminal, a log line a minute in a log file (SLURM .out, app.log), and a
run's log says what it does: fresh or resumed, each epoch's metrics as they come, where the record went."""
import logging

import pytest
from hydra import compose, initialize_config_dir

from lora_repro.app import CONF_DIR
from lora_repro.run import run
from lora_repro.train import progress
from tests import toy_tasks
from tests.toy_tasks import toy_registered  # noqa: F401  (the fixture registers the toy tasks)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_a_log_bar_logs_count_rate_and_eta_at_most_once_per_interval(caplog):
    clock = Clock()
    bar = progress.LogBar(100, "train glue/rte", initial=20, unit="step", every_s=60, clock=clock)
    with caplog.at_level(logging.INFO, logger="lora_repro.progress"):
        for _ in range(10):
            clock.t += 10
            bar.update(4)
            bar.set_postfix(loss="0.6123")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1                                     # at 60 s, not at every update
    assert lines[0] == "train glue/rte: 44/100 (44%) step, 0.4 step/s, ETA 2m20s, loss=0.6123"
    assert progress.duration(7300) == "2h01m" and progress.duration(5) == "5s"


def test_a_bar_only_at_a_terminal_and_nothing_when_disabled(monkeypatch):
    monkeypatch.setattr(progress, "interactive", lambda: False)
    assert isinstance(progress.bar(10, "x"), progress.LogBar)
    assert progress.bar(10, "x", enabled=False).disable
    monkeypatch.setattr(progress, "interactive", lambda: True)
    b = progress.bar(10, "x")
    assert not isinstance(b, progress.LogBar) and not b.disable
    b.close()


@pytest.mark.usefixtures("toy_registered")
def test_a_runs_log_says_fresh_each_epochs_metrics_and_where_the_record_went(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(progress, "interactive", lambda: False)
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)          # every step, to see the text progress
    data = toy_tasks.write_sentiment(tmp_path / "data")
    args = ["model=tiny-roberta", "method=bitfit", "trainer=tiny", "logger=none", "progress_bar=true",
            "task.name=toy/sentiment", f"task.data_dir={data}", "task.max_length=32", "trainer.epochs=2",
            f"results_dir={tmp_path / 'results'}"]
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose("config", overrides=args)
    with caplog.at_level(logging.INFO):
        rec = run(cfg)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("fresh start: no saved state in ") for line in lines), lines
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [e.split(":")[0] for e in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert f"accuracy={rec['history'][0]['accuracy']:.4g}" in epochs[0]
    steps = [line for line in lines if line.startswith("train toy/sentiment: ")]
    assert steps and "step/s" in steps[-1] and "loss=" in steps[-1]
    assert any(f"record {tmp_path / 'results' / 'runs' / rec['run_id']}.json" in line for line in lines)
