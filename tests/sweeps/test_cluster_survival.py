"""What lets a sweep survive a real cluster, without one (tools/slurm_test.py checks it on one): every Hydra
sweep syntax in `validate` and the planner; finished and waiting jobs dropped before launch; a summary that
counts failed, waiting and requeued jobs and exits 1 on a failure; resources checked before sbatch."""
import pytest

from lora_repro import records
from lora_repro.sweeps import compose as sweep
from lora_repro.sweeps import guard, launcher
from lora_repro.sweeps import plan as planner

DEMO = ["+experiment=demo", "+experiment/demo=lora", "task=glue/rte"]


def _fixtures(results_dir, tasks=("glue/rte",)):
    from lora_repro.tasks.fixtures import write_fixture
    for task in tasks:
        write_fixture(task, results_dir / "fixtures" / task)


def _finish(job_config, results_dir):
    rid = sweep.run_id_of(job_config)
    records.write_record({
        "run_id": rid, "created_at": records.now_iso(), "git_sha": None, "model": "tiny-roberta",
        "task": job_config["task"]["name"], "method": job_config["method"]["name"], "r": None, "alpha": None,
        "targets": None, "seed": job_config["seed"], "trainable_params": 1, "total_params": 2,
        "metrics": {"accuracy": 50.0}, "main_metric": "accuracy", "peak_vram_bytes": 0, "tokens_per_s": 1.0,
        "train_wall_s": 1.0, "status": "finished", "config": job_config}, results_dir)
    return rid


@pytest.mark.parametrize("seeds, n", [("range(3)", 3), ("range(1,4)", 3), ("choice(1,5)", 2), ("1,2", 2),
                                      ("7", 1)])
def test_every_sweep_syntax_expands_as_hydra_does(seeds, n, tmp_path):
    with sweep.hydra_context():
        jobs = sweep.sweep_overrides([*DEMO, f"seed={seeds}", f"results_dir={tmp_path}"])
    assert len(jobs) == n and all(j[-1].startswith("seed=") or "seed=" in " ".join(j) for j in jobs)


def test_lists_and_globs_are_not_sweeps_or_are_expanded():
    assert sweep.fixed_overrides(["seed=range(3)", "a=1", "method.targets=[q,v]", "m=glob(lora*)", "x=1,2"]) == \
        ["a=1", "method.targets=[q,v]"]
    with sweep.hydra_context():
        jobs = sweep.sweep_overrides(["model=tiny-roberta", "method=glob(lora*)", "method.targets=[q,v]"])
    # conf/method/lora*.yaml: lora and LoRA+ (issue 14's loraplus)
    assert jobs == [["model=tiny-roberta", f"method={m}", "method.targets=[q,v]"] for m in ("lora", "loraplus")]
    with pytest.raises(sweep.SweepError, match="cannot parse override 'seed=range\\(3'"):
        sweep.fixed_overrides(["seed=range(3"])


def test_validate_and_plan_accept_range(tmp_path, capsys):
    _fixtures(tmp_path)
    args = [*DEMO, "seed=range(2)", f"results_dir={tmp_path}"]
    assert guard.main(args) == 0
    assert "validate: 2 job(s), 2 valid" in capsys.readouterr().out
    assert planner.main(["--experiment", "demo", "+experiment/demo=lora", "task=glue/rte", "seed=range(2)",
                         f"results_dir={tmp_path}"]) == 0
    assert "+experiment=demo: 2 runs" in capsys.readouterr().out


def test_finished_jobs_are_dropped_before_launch(tmp_path):
    _fixtures(tmp_path)
    args = [*DEMO, "seed=1,2", f"results_dir={tmp_path}"]
    with sweep.hydra_context():
        jobs = sweep.sweep_overrides(args)
        rid = _finish(sweep.resolved_config(jobs[1]), tmp_path)
        problems, dropped = guard.check_jobs(jobs, sweep.CONFIG_NAME)
    assert problems == [] and list(dropped) == [1]
    assert dropped[1]["status"] == "skipped" and dropped[1]["run_id"] == rid


def test_stage2_waits_for_its_stage1_run_and_launches_when_it_finished(tmp_path):
    """A job starting from another run's adapter waits (not launched, not an error) until that run finished."""
    _fixtures(tmp_path, ("glue/mnli", "glue/rte"))
    stage2 = ["+experiment=demo_from_mnli", "task=glue/rte", "seed=1", f"results_dir={tmp_path}"]
    with sweep.hydra_context():
        jobs = sweep.sweep_overrides(stage2)
        problems, dropped = guard.check_jobs(jobs, sweep.CONFIG_NAME)
        assert problems == [] and [o["status"] for o in dropped.values()] == ["waiting"]
        (source_dir,) = {sweep.resolved_config(j)["method_init_from"] for j in jobs}
        assert "waits for run" in dropped[0]["error"] and source_dir in dropped[0]["error"]
        # the source run finished but its adapter is gone: that is a problem, not a wait
        source = sweep.resolved_config(["+experiment=demo", "+experiment/demo=lora", "task=glue/mnli", "seed=1",
                                        f"results_dir={tmp_path}"])
        assert source_dir.endswith(f"{_finish(source, tmp_path)}/adapter")
        problems, dropped = guard.check_jobs(jobs, sweep.CONFIG_NAME)
        assert dropped == {} and "finished but its adapter is missing" in problems[0]


def test_summary_counts_failed_waiting_requeued_and_names_reasons():
    jobs = [["seed=1"], ["seed=2"], ["seed=3"], ["seed=4"], ["seed=5"]]
    outcomes = {
        0: {"num": 0, "overrides": ["seed=1"], "status": "done", "record_path": "r0", "job_id": "7_0", "restarts": 2,
            "resumed_from_step": 40},
        1: {"num": 1, "overrides": ["seed=2"], "status": "skipped", "record_path": "r1"},
        2: {"num": 2, "overrides": ["seed=3"], "status": "failed", "error": "SLURM job 7_2 ended CANCELLED"},
        3: {"num": 3, "overrides": ["seed=4"], "status": "waiting", "error": "waits for run abc"},
    }
    counts, lines = guard.summary(jobs, outcomes)
    assert guard.summary_head(counts) == "5 jobs: 1 done, 1 skipped, 1 failed, 1 waiting, 1 missing, 1 requeued"
    text = "\n".join(lines)
    assert "(SLURM job 7_0, requeued 2x, resumed from step 40)" in text
    assert "error: SLURM job 7_2 ended CANCELLED" in text and "reason: waits for run abc" in text


def test_sweep_end_exits_1_when_a_job_failed_or_is_missing(tmp_path, capsys):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    g = guard.SweepGuard()
    g.jobs = [["seed=1"], ["seed=2"]]
    guard.write_job_outcome(tmp_path, 0, ["seed=1"], "done")
    guard.write_job_outcome(tmp_path, 1, ["seed=2"], "skipped")
    g.on_multirun_end(cfg)                                            # all fine: returns
    guard.write_job_outcome(tmp_path, 1, ["seed=2"], "failed", error="boom")
    with pytest.raises(SystemExit) as e:
        g.on_multirun_end(cfg)
    assert e.value.code == 1 and "1 failed" in capsys.readouterr().out


def test_dropped_jobs_are_read_back_by_number(tmp_path):
    records.atomic_write_json(guard.outcome_dir(tmp_path) / guard.DROPPED, {"3": {"status": "skipped"}})
    assert guard.read_dropped(tmp_path) == {3: {"status": "skipped"}}
    assert guard.read_dropped(tmp_path / "nowhere") == {}
    guard.write_job_outcome(tmp_path, 0, ["a=1"], "done")
    assert list(guard.read_outcomes(tmp_path)) == [0]                 # _dropped.json is not an outcome


@pytest.mark.parametrize("params, gres, message", [
    ({"gpus_per_node": 1, "partition": "debug"}, "(null)\n", "debug has no GPUs"),
    ({"gpus_per_node": "two"}, None, "gpus_per_node (LORA_SLURM_GPUS)='two': must be an integer >= 0"),
    ({"cpus_per_task": 0}, None, "cpus_per_task (LORA_SLURM_CPUS)=0: must be an integer >= 1"),
])
def test_misconfigured_resources_are_one_clear_line(params, gres, message):
    with pytest.raises(launcher.ResourceError) as e:
        launcher.check_resources(params, gres)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_resources_that_fit_pass():
    launcher.check_resources({"gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 64}, "gpu:h100:8\n")
    launcher.check_resources({"gpus_per_node": 0, "cpus_per_task": 1}, "(null)")
    launcher.check_resources({"gpus_per_node": 1}, None)              # unknown partition: sbatch decides


def test_a_failing_sacct_stops_the_sweep_before_submission(tmp_path, monkeypatch):
    """Without accounting submitit cannot see a job die and would wait forever: one clear line instead."""
    fake = tmp_path / "sacct"
    fake.write_text("#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with pytest.raises(launcher.ResourceError, match="accounting storage is disabled.*slurmdbd"):
        launcher.check_sacct()
    fake.write_text("#!/bin/sh\nexit 0\n")
    launcher.check_sacct()


@pytest.mark.parametrize("raised,code", [(guard.SweepFailed(1), 1), (SystemExit(1), 2)])
def test_a_failed_sweep_exits_1_even_when_no_job_ran_in_the_driver(monkeypatch, raised, code):
    """Under SLURM every job runs in another process, so the driver cannot tell a failed sweep from Hydra refusing
    an override by "did a job run here": a sweep's own exit 1 stays 1 (a stage-2 make target must see it), Hydra's
    refusal becomes the config-error status 2. (On a real cluster the failed sweep exited 2: make slurm-test.)"""
    import sys

    from lora_repro import app

    monkeypatch.setattr(sys, "argv", list(sys.argv))   # app.main sets sys.argv for Hydra

    def hydra_main():
        raise raised
    monkeypatch.setattr(app, "hydra_main", hydra_main)
    with pytest.raises(SystemExit) as e:
        app.main(["-m", "seed=1"])
    assert e.value.code == code
