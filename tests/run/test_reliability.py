"""Reliability: a stop signal checkpoints at a step boundary and the resumed run equals an uninterrupted
one bitwise; NaN loss and CUDA OOM end in failure records that a re-launch replaces; concurrent record
writers never tear a file; every config problem is reported at once; a sweep validates all its jobs
before launching any. (Kill -TERM / -9 of real subprocesses and concurrent sweeps: tests/integration/test_faults.py.)"""
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from lora_repro import records
from lora_repro.app import CONF_DIR
from lora_repro.run import RunConfigError, run, validate
from lora_repro.run.preempt import deferred_stop_signals
from lora_repro.tasks.fixtures import write_fixture
from lora_repro.train import loop
from lora_repro.train.state import load_progress

REPO = Path(__file__).resolve().parents[2]


def compose_cfg(args):
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose("config", overrides=args)


def base(tmp_path, results="results", *extra):
    data = tmp_path / "data"
    if not data.exists():
        write_fixture("glue/rte", data, n_train=32, n_eval=16)
    return ["model=tiny-roberta", "task=glue/rte", "method=lora", "trainer=tiny", "logger=none", "progress_bar=false",
            "task.max_length=64", "trainer.batch_size=4", f"task.data_dir={data}", f"results_dir={tmp_path / results}",
            *extra]


def adapter(rec):
    from safetensors.torch import load_file
    return load_file(f"{rec['adapter_dir']}/adapter.safetensors")


def calls_then(n, action, wrapped):
    """`wrapped` with `action()` run before its n-th call (a fault injected at a known micro-batch)."""
    count = {"n": 0}

    def f(*a, **k):
        count["n"] += 1
        if count["n"] == n:
            action()
        return wrapped(*a, **k)
    return f


def test_stop_signal_checkpoints_at_the_step_boundary_hands_over_and_resumes_bitwise(tmp_path, monkeypatch):
    """A stop signal mid-epoch: the step in flight finishes, the full state is saved, then the previous
    handler (here a stand-in for submitit's checkpoint-and-requeue) gets the signal; re-running the same
    config ends exactly where an uninterrupted run ends."""
    whole = run(compose_cfg(base(tmp_path, "a")))
    cfg = compose_cfg(base(tmp_path, "b"))
    state = tmp_path / "b" / "checkpoints" / whole["run_id"] / "state" / "state.pt"
    seen = []

    def requeue(signum, frame):  # what submitit does: checkpoint, requeue, exit
        seen.append((signum, load_progress(state.parent)))
        raise SystemExit(-1)

    previous = signal.signal(signal.SIGUSR1, requeue)
    try:
        monkeypatch.setattr(loop, "collate", calls_then(3, lambda: os.kill(os.getpid(), signal.SIGUSR1),
                                                         loop.collate))
        with pytest.raises(SystemExit):
            run(cfg)
        assert signal.getsignal(signal.SIGUSR1) is requeue       # our handler is gone again
    finally:
        signal.signal(signal.SIGUSR1, previous)
    monkeypatch.undo()
    ((signum, progress),) = seen
    assert signum == signal.SIGUSR1 and progress["epoch"] == 0 and progress["step"] == progress["batches_done"] == 3
    assert records.read_record(records.record_path(tmp_path / "b", whole["run_id"])) is None
    resumed = run(cfg)
    assert resumed["metrics"] == whole["metrics"] and resumed["history"] == whole["history"]
    a, b = adapter(whole), adapter(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stop_signal_without_a_previous_handler_exits_128_plus_signum(tmp_path):
    with deferred_stop_signals([signal.SIGUSR1]) as stop:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested
        with pytest.raises(SystemExit) as exit_:
            stop.deliver()
    assert exit_.value.code == 128 + signal.SIGUSR1
    previous = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        with deferred_stop_signals([signal.SIGUSR2]) as stop:   # an ignored signal stays ignored
            assert signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN and not stop.previous
    finally:
        signal.signal(signal.SIGUSR2, previous)


class NanAfter:
    """torch.nn.functional with a NaN loss from the n-th cross-entropy on."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __getattr__(self, name):
        return getattr(torch.nn.functional, name)

    def cross_entropy(self, *a, **k):
        self.calls += 1
        loss = torch.nn.functional.cross_entropy(*a, **k)
        return loss * float("nan") if self.calls >= self.n else loss


def test_nan_loss_stops_with_a_failure_record_naming_the_step_and_relaunch_replaces_it(tmp_path, monkeypatch):
    cfg = compose_cfg(base(tmp_path))
    monkeypatch.setattr(loop, "F", NanAfter(3))
    with pytest.raises(loop.NonFiniteLossError, match="loss is nan at step 3"):
        run(cfg)
    monkeypatch.undo()
    v = validate(cfg)
    failed = records.read_record(records.record_path(tmp_path / "results", v.run_id))
    assert failed["status"] == "failed" and failed["last_step"] == 2 and "step 3" in failed["error"]
    assert records.finished_record(tmp_path / "results", v.run_id) is None     # skip_existing will not skip it
    rec = run(cfg)                                                              # re-launch: replaced
    assert rec["status"] == "finished"
    (only,), bad = records.load_records(tmp_path / "results")
    assert not bad and only["status"] == "finished" and "error" not in only


def test_cuda_oom_leaves_a_failure_record_with_batch_size_and_peak_memory(tmp_path, monkeypatch):
    def oom():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(loop, "collate", calls_then(6, oom, loop.collate))
    cfg = compose_cfg(base(tmp_path))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        run(cfg)
    (rec,), _ = records.load_records(tmp_path / "results")
    assert rec["status"] == "failed" and rec["batch_size"] == 4 and rec["last_step"] == 5
    assert rec["peak_vram_bytes"] > 0 and rec["peak_memory_kind"] == "cpu_rss"
    assert "out of memory at trainer.batch_size=4" in rec["error"] and "GiB" in rec["error"]


def test_a_run_held_by_another_process_is_not_started_twice(tmp_path):
    cfg = compose_cfg(base(tmp_path))
    v = validate(cfg)
    with records.file_lock(tmp_path / "results" / "checkpoints" / v.run_id / "run.lock"):
        out = subprocess.run([sys.executable, "-c", "import sys; from lora_repro.app import main; main(sys.argv[1:])",
                              *base(tmp_path)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                             capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "running in another process" in out.stdout + out.stderr
    assert not (tmp_path / "results" / "runs").exists()


# --- records under concurrency ----------------------------------------------------------------------
def _record(run_id, status, writer):
    return dict(run_id=run_id, created_at=records.now_iso(), git_sha=None, model="m", task="t", method="lora",
                r=8, alpha=8, targets=["q"], seed=1, trainable_params=1, total_params=2,
                metrics={"accuracy": writer / 1000} if status == "finished" else {}, main_metric="accuracy",
                peak_vram_bytes=None, tokens_per_s=None, train_wall_s=None, status=status,
                config={"writer": writer, "padding": "x" * 20000})   # large enough to be written in pieces


def _write_many(args):
    results, writer = args
    for i in range(15):
        status = "failed" if (writer + i) % 3 == 0 else "finished"
        records.write_record(_record("shared", status, writer), results)
        records.write_record(_record(f"own-{writer}", status, writer), results)
    return writer


def _read_while_writing(results, stop_at):
    torn = 0
    path = records.record_path(results, "shared")
    for _ in range(stop_at):
        try:
            with open(path) as f:
                json.load(f)
        except FileNotFoundError:
            continue
        except json.JSONDecodeError:
            torn += 1
    return torn


def test_many_processes_writing_one_results_dir_never_tear_a_record(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        reader = pool.apply_async(_read_while_writing, (str(tmp_path), 1500))
        writers = pool.map(_write_many, [(str(tmp_path), w) for w in range(1, 4)])
        assert reader.get(timeout=120) == 0
    assert writers == [1, 2, 3]
    good, bad = records.load_records(tmp_path)
    assert not bad and sorted(r["run_id"] for r in good) == ["own-1", "own-2", "own-3", "shared"]
    assert {r["status"] for r in good} == {"finished"}          # a failed write never replaced a finished one
    assert not [p for p in (tmp_path / "runs").iterdir() if p.suffix == ".tmp"]


# --- validation ------------------------------------------------------------------------------------
def test_every_config_problem_is_reported_at_once(tmp_path):
    cfg = compose_cfg(base(tmp_path) + ["trainer.lr=0", "trainer.batch_size=0", "task.max_length=1000",
                                        "method.targets=[]", "task.data_dir=/no/such/dir"])
    with pytest.raises(RunConfigError) as err:
        validate(cfg)
    problems = err.value.problems
    assert any(p.startswith("trainer.lr=0 is invalid") for p in problems)
    assert any(p.startswith("trainer.batch_size=0 is invalid") for p in problems)
    assert any(p.startswith("task.data_dir='/no/such/dir' is invalid") for p in problems)
    assert "task.max_length=1000 is invalid; allowed: at most 128, the positions model='tiny-roberta' has" in problems
    assert any("targets=[]" in p for p in problems)
    assert len(problems) == 5, problems


def test_missing_split_file_is_a_config_problem(tmp_path):
    cfg = compose_cfg(base(tmp_path))
    (tmp_path / "data" / "validation.jsonl").unlink()
    with pytest.raises(RunConfigError, match=r"missing: validation\{\.jsonl"):
        validate(cfg)


def test_global_batch_size_must_match_per_process_batch_times_world(tmp_path, monkeypatch):
    args = base(tmp_path) + ["+trainer.global_batch_size=16", "trainer.grad_accum=2"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    validate(compose_cfg(args))                                       # 4 x 2 x 2 = 16
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(RunConfigError, match=r"trainer.global_batch_size=16 is not trainer.batch_size=4 x "
                                             r"trainer.grad_accum=2 x WORLD_SIZE=4 = 32; allowed: per process 4"):
        validate(compose_cfg(args))
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(RunConfigError, match="a multiple of WORLD_SIZE=3"):
        validate(compose_cfg(args))


@pytest.mark.slow
def test_a_sweep_with_a_bad_job_launches_nothing_and_lists_every_problem(tmp_path):
    args = ["-m"] + [a for a in base(tmp_path) if not a.startswith("task.max_length")] + \
        ["seed=1,2", "trainer.lr=0.001,0", "task.max_length=64,500"]
    out = subprocess.run([sys.executable, str(REPO / "experiments" / "train.py"), *args], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "sweep aborted before launching any job: 8 config problem(s) in 6 of 8 jobs" in out.stderr
    assert out.stderr.count("trainer.lr=0 is invalid") == 4 and out.stderr.count("task.max_length=500 is invalid") == 4
    assert not (tmp_path / "results" / "runs").exists() and not (tmp_path / "results" / "checkpoints").exists()


class PreemptedOnce:
    """A submitit job that trains one run and is preempted (SIGUSR2, submitit's signal) at its 5th
    micro-batch the first time it runs. `checkpoint` is what hydra-submitit-launcher's launcher does:
    resubmit the same call; submitit then requeues it (the LOCAL executor restarts it on exit 144)."""

    def __call__(self, args, attempts):
        with open(attempts, "a") as f:
            f.write("attempt\n")
        if len(Path(attempts).read_text().splitlines()) == 1:
            loop.collate = calls_then(5, lambda: os.kill(os.getpid(), signal.SIGUSR2), loop.collate)
        rec = run(compose_cfg(args))
        return {"metrics": rec["metrics"], "history": rec["history"]}

    def checkpoint(self, *args, **kwargs):
        import submitit
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


@pytest.mark.slow
def test_submitit_preemption_checkpoints_requeues_and_resumes_to_the_same_result(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    whole = run(compose_cfg(base(tmp_path, "a")))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="local")
    executor.update_parameters(timeout_min=30, tasks_per_node=1, gpus_per_node=0)
    job = executor.submit(PreemptedOnce(), base(tmp_path, "b"), str(tmp_path / "attempts"))
    result = job.result()
    log = (job.stdout() or "") + (job.stderr() or "")
    assert (tmp_path / "attempts").read_text().count("attempt") == 2, log
    assert "SIGUSR2: checkpointing at the next step boundary" in log and "this job is preempted" in log
    assert "Requeued" in log and "stopped after 5 steps (a stop signal)" in log
    assert result == {"metrics": whole["metrics"], "history": whole["history"]}


def test_validate_command_checks_every_job_of_a_preset_sweep(tmp_path, capsys):
    from lora_repro.sweeps import guard as sweep_guard
    write_fixture("glue/rte", tmp_path / "fixtures" / "glue" / "rte", n_train=8, n_eval=4)
    args = ["+experiment=demo", "+experiment/demo=lora,bitfit", "task=glue/rte,glue/mnli", f"results_dir={tmp_path}"]
    assert sweep_guard.main(args) == 2
    out = capsys.readouterr()
    assert "validate: 4 job(s), 2 valid, 2 with 2 problem(s)" in out.out
    assert out.err.count("task.data_dir=") == 2 and "glue/mnli" in out.err and "validation_matched" in out.err
    write_fixture("glue/mnli", tmp_path / "fixtures" / "glue" / "mnli", n_train=8, n_eval=4)
    assert sweep_guard.main(args) == 0
