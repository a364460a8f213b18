import json

import pytest

from lora_repro import records


def _rec(run_id="abc", status="finished", **kw):
    base = dict(run_id=run_id, created_at=records.now_iso(), git_sha=None, model="m", task="t", method="lora",
                r=8, alpha=16, targets=["q", "v"], seed=1, trainable_params=1, total_params=2,
                metrics={"accuracy": 0.5}, main_metric="accuracy", peak_vram_bytes=None, tokens_per_s=1.0,
                train_wall_s=1.0, status=status, config={})
    base.update(kw)
    return base


def test_identity_ignores_logging_and_launcher_keys():
    a = {"model": "x", "method": {"name": "lora", "r": 8}, "seed": 1, "logger": {"name": "wandb"}}
    b = {"seed": 1, "method": {"r": 8, "name": "lora"}, "model": "x", "logger": {"name": "none"}, "hydra": {"a": 1}}
    assert records.run_identity(a) == records.run_identity(b)
    assert records.run_identity(a) != records.run_identity({**a, "seed": 2})


def test_write_is_atomic_and_load_reports_corrupt(tmp_path):
    records.write_record(_rec("r1"), tmp_path)
    (tmp_path / "runs" / "broken.json").write_text("{not json")
    (tmp_path / "runs" / "partial.json").write_text(json.dumps({"run_id": "partial"}))
    good, bad = records.load_records(tmp_path)
    assert [r["run_id"] for r in good] == ["r1"]
    assert sorted(p.name for p, _ in bad) == ["broken.json", "partial.json"]
    assert not list((tmp_path / "runs").glob("*.tmp"))


def test_failed_record_never_replaces_finished(tmp_path):
    records.write_record(_rec("r1"), tmp_path)
    records.write_record(_rec("r1", status="failed", metrics={}), tmp_path)
    assert records.finished_record(tmp_path, "r1")["metrics"] == {"accuracy": 0.5}


def test_malformed_record_is_refused(tmp_path):
    with pytest.raises(ValueError, match="status"):
        records.write_record(_rec("r1", status="weird"), tmp_path)
