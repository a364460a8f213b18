"""A sweep on a real SLURM cluster, with the faults a cluster brings (`make slurm-test`; root, Debian).

`python tools/slurm_test.py` brings up a single-node cluster on this machine (tools/slurm_cluster.sh: munge,
MariaDB + slurmdbd so that `sacct` answers, slurmctld, slurmd), runs a sweep of three tiny RoBERTa LoRA runs on
GLUE fixture data through the path `make reproduce-<preset> LAUNCHER=slurm` takes (train.py -m
hydra/launcher=slurm, the default W&B logger, offline), and while it trains:

  usr2       `scancel --signal=USR2` to task 0 (what SLURM sends before the time limit): the run checkpoints,
             submitit requeues the job, and it resumes;
  requeue    `scontrol requeue` of task 1 (preemption: SIGTERM to every process of the job, W&B's service
             included): the run checkpoints and SLURM requeues it;
  scancel    `scancel` of task 2 (a job that ends CANCELLED): the driver records it as failed, prints its
             summary and exits 1;
  gpus       first, the sweep with LORA_SLURM_GPUS=1 on the GPU-less partition: exit 2, one error line,
             nothing queued;
  relaunch   the same sweep again: the two finished runs are not submitted (the array job has one task), the
             cancelled one resumes from its saved state and finishes; exit 0.

Then every record must equal the uninterrupted run's (metrics, per-epoch history, adapter tensors: bitwise on
CPU), every run id must be one W&B run (its offline segments all carry that id), nothing may be allocated for a
finished run, and the summaries must count what happened. It prints one line:
    slurm: N jobs, N preempted, N resumed bitwise, N failed as injected, 0 records lost
and exits 0 only when all of that holds. The cluster is torn down (by PID) whatever happens.

The runs are paced (a Hydra callback adds a sleep per micro-batch, `Pace` below, under `hydra.callbacks`, so it
changes no run identity) so that each fault lands mid-training.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hydra.experimental.callback import Callback  # noqa: E402

MARK = "slurm-test-batch"
PACE_S = 0.4            # seconds per micro-batch: 16 batches (2 epochs) take ~7 s, time to land a signal
SEEDS = (1, 2, 3)
CLUSTER = REPO / "tools" / "slurm_cluster.sh"


class Pace(Callback):
    """In each job: announce and slow down every training micro-batch (through the trainer's batch hook)."""

    def on_job_start(self, config, **kwargs) -> None:
        from lora_repro.train.loop import BATCH_HOOKS

        count = [0]

        def pace(epoch: int, batch: int, step: int) -> None:
            count[0] += 1
            print(f"{MARK} {count[0]}", flush=True)
            time.sleep(PACE_S)
        BATCH_HOOKS.append(pace)


def overrides(work: Path, results: Path, logger: str | None = None) -> list[str]:
    return ["model=tiny-roberta", "task=glue/rte", "method=lora", "trainer=tiny", "progress_bar=false",
            "task.max_length=64", "trainer.batch_size=4", f"task.data_dir={work}/data/${{task.name}}",
            f"results_dir={results}", "seed=" + ",".join(map(str, SEEDS))] + ([f"logger={logger}"] if logger else [])


def env(cluster: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "SLURM_CONF": str(cluster / "etc" / "slurm.conf"),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
            "WANDB_SILENT": "true", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
            "LORA_SLURM_GPUS": "0", "LORA_SLURM_CPUS": "1", "LORA_SLURM_MEM_GB": "1", "LORA_SLURM_TIMEOUT_MIN": "10",
            "LORA_SLURM_PARALLEL": "3"}


def sh(cmd: list[str], environ: dict, check: bool = True) -> str:
    out = subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stdout}{out.stderr}")
    return out.stdout


def sweep_cmd(work: Path, results: Path, slurm: bool = True) -> list[str]:
    launcher = ["hydra/launcher=slurm", "+hydra.callbacks.pace._target_=tools.slurm_test.Pace"] if slurm else []
    return [sys.executable, str(REPO / "experiments" / "train.py"), "-m",
            *overrides(work, results, None if slurm else "none"), *launcher]


def array_jobs(environ: dict) -> list[str]:
    """The job ids sacct knows (an array job by its base id; submitit submits one job as a plain job), in order."""
    ids = sh(["sacct", "-n", "-X", "-P", "-o", "JobID"], environ).split()
    return sorted({i.split("_")[0] for i in ids}, key=int)


def tasks_of(array: str, environ: dict) -> list[str]:
    """The allocations of one submission: its array tasks, or the job itself."""
    return sorted({i for i in sh(["sacct", "-n", "-X", "-P", "-o", "JobID", "-j", array], environ).split()
                   if i == array or i.startswith(f"{array}_")})


def marks(results: Path, job: str) -> int:
    """The last micro-batch mark in a job's submitit log (0 before training started)."""
    log = results / "slurm" / job / f"{job}_0_log.out"
    found = re.findall(rf"^{MARK} (\d+)$", log.read_text(errors="replace"), re.M) if log.exists() else []
    return int(found[-1]) if found else 0


class SlurmTest:
    def __init__(self, work: Path, log=print):
        self.work, self.log = work, log
        self.cluster, self.results, self.reference = work / "cluster", work / "results", work / "reference"
        self.env = env(self.cluster)
        self.problems: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        self.log(f"  {'ok    ' if ok else 'FAILED'}  {what}")
        if not ok:
            self.problems.append(what)
        return ok

    def run(self) -> int:
        t0 = time.perf_counter()
        subprocess.run([str(CLUSTER), "up", str(self.cluster)], check=True, timeout=300)
        try:
            code = self.scenario()
        finally:
            subprocess.run([str(CLUSTER), "down", str(self.cluster)], timeout=120)
        self.log(f"({time.perf_counter() - t0:.0f} s)")
        return code

    def scenario(self) -> int:
        from lora_repro import records
        from lora_repro.tasks.fixtures import write_fixture

        write_fixture("glue/rte", self.work / "data" / "glue" / "rte", n_train=32, n_eval=16)
        self.log("uninterrupted reference runs (local, no SLURM) ...")
        ref = subprocess.run(sweep_cmd(self.work, self.reference, slurm=False), cwd=REPO, env=self.env,
                             capture_output=True, text=True, timeout=600)
        if ref.returncode != 0:
            raise RuntimeError(f"the reference runs failed:\n{ref.stdout[-3000:]}{ref.stderr[-3000:]}")

        self.log("a GPU request on the GPU-less partition (LORA_SLURM_GPUS=1, the default) ...")
        before = set(array_jobs(self.env))
        gpu = subprocess.run(sweep_cmd(self.work, self.results), cwd=REPO, env={**self.env, "LORA_SLURM_GPUS": "1"},
                             capture_output=True, text=True, timeout=300)
        errors = [x for x in gpu.stderr.splitlines() if x.startswith("sweep not submitted:")]
        self.check(gpu.returncode == 2 and len(errors) == 1 and "has no GPUs" in errors[0]
                   and "Traceback" not in gpu.stderr and set(array_jobs(self.env)) == before,
                   f"misconfigured resources: exit {gpu.returncode}, nothing queued, one line: "
                   f"{errors[0] if errors else gpu.stderr[-500:]}")

        self.log("sweep 1 on SLURM: USR2 to task 0, scontrol requeue of task 1, scancel of task 2 ...")
        driver = subprocess.Popen(sweep_cmd(self.work, self.results), cwd=REPO, env=self.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            injected = self.inject(before)
            first = driver.communicate(timeout=540)[0]
        finally:
            if driver.poll() is None:
                driver.kill()
        self.log("sweep 2: the same command again ...")
        second = subprocess.run(sweep_cmd(self.work, self.results), cwd=REPO, env=self.env, capture_output=True,
                                text=True, timeout=540)
        second_out = second.stdout + second.stderr
        arrays = array_jobs(self.env)
        relaunch = [a for a in arrays if a not in before and a != injected["array"]]

        # --- checks -------------------------------------------------------------------------------------
        head1 = next((x for x in first.splitlines() if x.startswith("sweep summary:")), "")
        head2 = next((x for x in second_out.splitlines() if x.startswith("sweep summary:")), "")
        self.check(driver.returncode == 1 and "3 jobs: 2 done, 0 skipped, 1 failed, 2 requeued" in head1,
                   f"sweep 1 exits {driver.returncode} (want 1) with [{head1}]")
        self.check("ended CANCELLED" in first, "sweep 1 names the cancelled job's state in its summary")
        self.check(second.returncode == 0 and "3 jobs: 1 done, 2 skipped, 0 failed" in head2,
                   f"sweep 2 exits {second.returncode} (want 0) with [{head2}]")
        n_tasks = len(tasks_of(relaunch[0], self.env)) if len(relaunch) == 1 else -1
        self.check(n_tasks == 1, f"sweep 2 allocated {n_tasks} job(s) for 1 unfinished run (finished runs dropped)")

        good, bad = records.load_records(self.results)
        ref_recs = {r["run_id"]: r for r in records.load_records(self.reference)[0]}
        lost = resumed_bitwise = 0
        for rid, ref_rec in ref_recs.items():
            mine = [r for r in good if r["run_id"] == rid and records.is_finished(r)]
            if len(mine) != 1 or not same_result(mine[0], ref_rec):
                lost += 1
                self.check(False, f"run {rid}: {len(mine)} finished record(s), equal to the uninterrupted run: "
                                  f"{bool(mine) and same_result(mine[0], ref_rec)}")
                continue
            rec = mine[0]
            resumed_bitwise += rec.get("resumed_from_step") is not None
            self.check(rec.get("job_id") is not None and rec.get("host"),
                       f"run {rid} (seed {rec['seed']}): SLURM job {rec.get('job_id')} on {rec.get('host')}, "
                       f"{rec.get('restarts')} restart(s), resumed from step {rec.get('resumed_from_step')}")
        self.check(len(ref_recs) == len(SEEDS) and not bad, f"{len(ref_recs)} reference runs, {len(bad)} bad records")
        wandb_ids = {}
        for d in (self.results / "wandb").glob("offline-run-*"):
            from lora_repro.run.wandb_logger import read_offline_run
            wandb_ids.setdefault(read_offline_run(d)["id"], []).append(d.name)
        self.check(set(wandb_ids) == set(ref_recs),
                   f"one W&B run per run id: {len(wandb_ids)} W&B run id(s) for {len(ref_recs)} runs, segments "
                   f"{sorted(len(v) for v in wandb_ids.values())}")
        names = sh(["sacct", "-n", "-X", "-P", "-o", "JobID,JobName"], self.env)
        self.check(all(f":{rid}" in names for rid in ref_recs), "SLURM job names carry the run ids")
        self.check("resumed from step" in second_out or "resumed from step" in _job_logs(self.results),
                   "a resumed run logs `resumed from step N`")
        submitted = sum(len(tasks_of(a, self.env)) for a in arrays if a not in before)
        preempted = sum(injected[k] for k in ("usr2", "requeue"))
        failed = int("1 failed" in head1)
        print(f"slurm: {submitted} jobs, {preempted} preempted, {resumed_bitwise} resumed bitwise, {failed} failed as "
              f"injected, {lost} records lost", flush=True)
        if self.problems:
            self.log("sweep 1 output:\n" + first[-4000:] + "\nsweep 2 output:\n" + second_out[-3000:])
        return 0 if not self.problems and lost == 0 else 1

    def inject(self, before: set[str], timeout: float = 300) -> dict:
        """Wait for the array job's three tasks to train, then signal each (once) at micro-batch 5."""
        deadline = time.monotonic() + timeout
        array = None
        while array is None and time.monotonic() < deadline:
            new = [a for a in array_jobs(self.env) if a not in before]
            array = new[0] if new else None
            time.sleep(0.5)
        done = {"array": array, "usr2": 0, "requeue": 0, "scancel": 0}
        actions = {0: ("usr2", ["scancel", "--signal=USR2"]), 1: ("requeue", ["scontrol", "requeue"]),
                   2: ("scancel", ["scancel"])}
        while actions and time.monotonic() < deadline:
            for task, (name, cmd) in list(actions.items()):
                job = f"{array}_{task}"
                if marks(self.results, job) >= 5:
                    sh([*cmd, job], self.env)
                    self.log(f"  injected {name}: {' '.join(cmd)} {job} at micro-batch {marks(self.results, job)}")
                    done[name] += 1
                    del actions[task]
            time.sleep(0.2)
        if actions:
            self.log(f"  NOT injected (the jobs never reached micro-batch 5): {sorted(n for n, _ in actions.values())}")
        return done


def _job_logs(results: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in (results / "slurm").glob("*/*_log.*"))


def same_result(rec: dict, ref: dict) -> bool:
    import torch
    from safetensors.torch import load_file

    if rec["metrics"] != ref["metrics"] or rec["history"] != ref["history"]:
        return False
    a, b = (load_file(f"{r['adapter_dir']}/adapter.safetensors") for r in (rec, ref))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/slurm_test.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", help="where the cluster and the runs live (default: a temp dir, removed "
                                          "when everything passed)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("slurm-test: the local cluster needs root (it starts munged, MariaDB and the SLURM daemons)",
              file=sys.stderr)
        return 2
    subprocess.run([str(CLUSTER), "install"], check=True, timeout=600)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="lora-repro-slurm-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)   # MariaDB runs as its own user inside it
    code = SlurmTest(work).run()
    if code == 0 and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    elif code:
        print(f"work dir kept for inspection: {work}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
