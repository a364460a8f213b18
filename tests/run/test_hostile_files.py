"""Files a run reads back are data, never code; a damaged one is named with the ways out; a rerun that does not
finish never replaces the finished run's adapter; files keep the umask's mode (review: F13, F14, F16, F34)."""
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from lora_repro import paths, records
from lora_repro.app import CONF_DIR
from lora_repro.run import RunConfigError, plain_config, run, run_id_of
from lora_repro.tasks.fixtures import write_fixture
from lora_repro.train import loop
from lora_repro.train.state import STATE_FILE, ResumeStateError, load_progress, load_state, save_state


def compose_cfg(args):
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose("config", overrides=args)


def base(tmp_path, *extra, data_seed=0):
    data = tmp_path / "data"
    write_fixture("glue/rte", data, n_train=32, n_eval=16, seed=data_seed)
    return ["model=tiny-roberta", "task=glue/rte", "method=lora", "trainer=tiny", "logger=none", "progress_bar=false",
            "task.max_length=64", "trainer.batch_size=8", f"task.data_dir={data}", f"results_dir={tmp_path / 'res'}",
            *extra]


class Planted:
    """What an attacker plants: unpickling it runs a shell command that writes a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"echo code ran > {self.marker}",)


def plant(path: Path, marker: Path) -> None:
    torch.save({"format": 2, "progress": Planted(marker)}, path)


def state_path(tmp_path, run_id):
    return paths.state_dir(tmp_path / "res", run_id) / STATE_FILE


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- item 1: no code from files ------------------------------------------------------------------------------
def test_the_planted_pickle_really_runs_code_when_unpickled(tmp_path):
    """The test's premise: loading the planted file the old way (weights_only=False) writes the marker."""
    marker = tmp_path / "PWNED"
    plant(tmp_path / "state.pt", marker)
    torch.load(tmp_path / "state.pt", weights_only=False)
    assert marker.read_text().strip() == "code ran"


def test_a_planted_resume_state_runs_no_code_and_says_which_file_and_what_to_do(tmp_path):
    marker = tmp_path / "PWNED"
    cfg = compose_cfg(base(tmp_path, "+stop_after_steps=1"))
    assert run(cfg) is None
    run_id = run_id_of(plain_config(cfg))
    state = state_path(tmp_path, run_id)
    assert load_progress(state.parent)["step"] == 1     # a real state, read as data
    plant(state, marker)
    with pytest.raises(RunConfigError) as e:
        run(compose_cfg(base(tmp_path)))
    assert not marker.exists()
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and str(state) in msg and "resume=false" in msg and "delete" in msg
    assert "could run code" in msg
    failed = records.read_record(records.record_path(tmp_path / "res", run_id))
    assert failed["status"] == "failed" and str(state) in failed["error"]
    assert run(compose_cfg(base(tmp_path, "resume=false")))["status"] == "finished"   # the first way out works
    assert not marker.exists()


def test_every_loader_of_a_state_refuses_a_pickle(tmp_path):
    marker = tmp_path / "PWNED"
    plant(tmp_path / STATE_FILE, marker)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    for load in (lambda: load_progress(tmp_path), lambda: load_state(tmp_path, model, opt, sched, None)):
        with pytest.raises(ResumeStateError, match="could run code"):
            load()
    assert not marker.exists()


def test_a_state_round_trips_every_rng_exactly(tmp_path):
    import random

    import numpy as np
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    random.seed(3), np.random.seed(3), torch.manual_seed(3), np.random.randn()   # numpy with a cached gaussian
    save_state(tmp_path, model, opt, sched, None, {"step": 2, "best": {"acc": np.float32(0.5)}})
    want = (random.random(), np.random.randn(), float(torch.rand(1)))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    assert load_state(tmp_path, model, opt, sched, None) == {"step": 2, "best": {"acc": 0.5}}
    assert (random.random(), np.random.randn(), float(torch.rand(1))) == want


# --- item 6: a damaged checkpoint is named and recoverable ------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_state_names_its_file_and_the_ways_out(tmp_path, damage):
    cfg = base(tmp_path, "+stop_after_steps=2")
    assert run(compose_cfg(cfg)) is None
    state = next((tmp_path / "res" / "checkpoints").glob(f"*/state/{STATE_FILE}"))
    data = state.read_bytes()
    state.write_bytes({"truncate": data[:len(data) // 2], "garbage": os.urandom(len(data)), "empty": b""}[damage])
    for _ in range(2):   # every relaunch says the same, with the way out
        with pytest.raises(ResumeStateError) as e:
            run(compose_cfg(base(tmp_path)))
        assert str(state) in str(e.value) and "resume=false" in str(e.value) and "delete" in str(e.value)
        assert len(str(e.value).splitlines()) == 1
    state.unlink()     # the second way out
    assert run(compose_cfg(base(tmp_path)))["status"] == "finished"


# --- item 5: nothing finished is overwritten by a run that did not finish ---------------------------------------
def _adapter_file(rec) -> Path:
    return Path(rec["adapter_dir"]) / "adapter.safetensors"


def test_a_stopped_or_failed_rerun_leaves_the_finished_record_and_its_adapter_alone(tmp_path, monkeypatch, caplog):
    first = run(compose_cfg(base(tmp_path)))
    rec_path = records.record_path(tmp_path / "res", first["run_id"])
    before = (rec_path.read_text(), sha(_adapter_file(first)))
    link = paths.adapter_dir(tmp_path / "res", first["run_id"])
    assert sha(link / "adapter.safetensors") == before[1]          # the stable name shows the finished adapter

    def unchanged():
        assert rec_path.read_text() == before[0]
        assert sha(_adapter_file(first)) == before[1] and sha(link / "adapter.safetensors") == before[1]

    # the data is fixed in place, then rerun: stopped after its first improving epoch (review F34) ...
    rerun = base(tmp_path, "skip_existing=false", data_seed=1)
    assert run(compose_cfg(rerun + ["+stop_after_steps=5"])) is None
    unchanged()
    # ... failed during the second epoch's evaluation ...
    calls = {"n": 0}
    real = loop.evaluate_encoder

    def fail_first(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected failure in evaluation")
        return real(*a, **k)
    monkeypatch.setattr(loop, "evaluate_encoder", fail_first)
    with pytest.raises(RuntimeError, match="injected"):
        run(compose_cfg(rerun))
    unchanged()
    assert f"the finished record is kept: {rec_path}" in caplog.text and "failure record" not in caplog.text  # F35
    monkeypatch.undo()
    # ... killed between publishing its new adapter and writing its record
    monkeypatch.setattr(records, "write_record", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run(compose_cfg(rerun))
    unchanged()
    monkeypatch.undo()
    # the relaunch finishes: record and adapter switch together; older versions are gone
    second = run(compose_cfg(rerun))
    assert rec_path.read_text() != before[0] and json.loads(rec_path.read_text()) == second
    assert sha(_adapter_file(second)) != before[1]
    assert sha(link / "adapter.safetensors") == sha(_adapter_file(second))
    assert link.resolve() == Path(second["adapter_dir"]).resolve()
    ckpt = paths.checkpoint_dir(tmp_path / "res", first["run_id"])
    assert sorted(p.name for p in ckpt.iterdir() if not p.name.endswith(".lock")) == \
        sorted(["adapter", Path(second["adapter_dir"]).name])


# --- item 7: shared results dirs --------------------------------------------------------------------------------
def test_records_adapters_and_states_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        rec = run(compose_cfg(base(tmp_path, "trainer.epochs=1")))
        assert run(compose_cfg(base(tmp_path, "seed=2", "+stop_after_steps=1"))) is None
    finally:
        os.umask(old)
    state = next((tmp_path / "res" / "checkpoints").glob(f"*/state/{STATE_FILE}"))
    files = [records.record_path(tmp_path / "res", rec["run_id"]), _adapter_file(rec),
             Path(rec["adapter_dir"]) / "adapter_config.json", state]
    assert {str(f): oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {str(f): "0o644" for f in files}
