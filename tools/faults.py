"""Fault injection: break real runs and sweeps the ways clusters break them, and check no result is lost.

`python tools/faults.py` (`make fault-test`) runs tiny RoBERTa LoRA runs on GLUE fixture data (CPU,
offline, about a minute on 2 cores), each in its own process as the train app, and injects:

  sigterm-resume     kill -TERM mid-epoch: the run checkpoints at the next step boundary and exits 143;
                     re-running the same command says `resumed from step N`, trains only the micro-batches
                     after that step (counted), and ends bitwise equal to an uninterrupted run.
  kill9-relaunch     kill -9 mid-epoch (no chance to save): the relaunch resumes from the last epoch
                     checkpoint (its step, and the batches it trains, counted) and again ends bitwise equal.
  sweep-crash        a sweep where one job crashes mid-training: the other job finishes, the crashed one
                     leaves a failed record, the sweep goes on and exits 1 with a summary; relaunched, the finished job
                     is skipped and the failed one re-runs and replaces its record.
  corrupt-record     a finished record truncated on disk: load_records and the tables report and skip
                     it; the relaunch does not skip the run and rewrites a complete record.
  concurrent-sweeps  two sweeps sharing a job, started at once into one results dir while the harness holds
                     the shared run's lock: both must report it as running in another process and train only
                     their own job; once the lock is released a relaunch trains it: 3 runs, 3 trainings.
  sigterm-tree-wandb SIGTERM to the run and every process below it (W&B's service too), as SLURM signals a
                     job, with the default W&B logger: the run checkpoints anyway, and the resumed run says
                     `resumed from step N`, equals the uninterrupted one and continues the same W&B run (one id).

It ends with `faults: N injected, N survived, M records lost`, computed from the results dir: a record is
kept when exactly one well-formed finished record exists for each expected run identity (the identities
are computed from the runs' configs, not taken from the records). Exit status 0 only when every fault
was survived and no record was lost.

Each check proves its mechanism, so a build without it fails: `--mutate no-resume,no-lock` runs the suite
against the same code with resume or the run lock switched off (`lora_repro.mutations`, test-only), and the
faults that depend on them are reported as not survived (tests/integration/test_faults.py runs this).
`--only NAME,...` runs some faults (and only the reference runs they compare against).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:   # run from a checkout: the package beside this folder
    sys.path.insert(0, str(REPO))

from lora_repro import mutations, paths, records  # noqa: E402

PACE_S = 0.05          # a paced run sleeps this long per micro-batch, so a kill lands mid-epoch
BATCHES_PER_EPOCH = 8  # 32 fixture examples, batch 4
EPOCHS = 2             # trainer=tiny
MARK = "fault-batch"
RESUMED = "resumed from step"   # what the trainer logs when it continues from a saved state
STARTED = "trainable (paper count)"  # what a run logs once it starts training (one line per training)
CRASH = "injected crash"

# The faults, in the order they run: name -> Suite method. A new fault is a Suite method with @fault(...).
FAULTS: dict[str, Callable] = {}


def fault(name: str, reference_seeds: tuple[int, ...] = ()):
    """Register a Suite method as the fault `name`; `reference_seeds`: the uninterrupted runs it compares to."""
    def register(method: Callable) -> Callable:
        method.reference_seeds = reference_seeds
        FAULTS[name] = method
        return method
    return register


def base_overrides(work: Path, results: Path) -> list[str]:
    return ["model=tiny-roberta", "task=glue/rte", "method=lora", "trainer=tiny", "logger=none", "progress_bar=false",
            "task.max_length=64", "trainer.batch_size=4", f"task.data_dir={work}/data/${{task.name}}",
            f"results_dir={results}"]


def child_env() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "WANDB_MODE": "offline", "WANDB_SILENT": "true", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return env


def train_cmd(args: list[str], paced: bool = False, mode: str | None = None) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), mode or ("--paced" if paced else "--train"), *args]


def train(args: list[str], timeout: int = 300, mode: str | None = None) -> subprocess.CompletedProcess:
    """The train app in a child process; mode `--count` announces every micro-batch (no pacing),
    `--crash-at=N` also raises at the N-th one (a job that dies mid-training)."""
    return subprocess.run(train_cmd(args, mode=mode), cwd=REPO, env=child_env(), capture_output=True, text=True,
                          timeout=timeout)


def batches_trained(out: str) -> int:
    return sum(line.strip().startswith(f"{MARK} ") for line in out.splitlines())


def kill_at(args: list[str], batch: int, sig: int, timeout: int = 300) -> tuple[int, str]:
    """Start a paced run, send `sig` when it starts micro-batch `batch` (counted across epochs), wait for it."""
    proc = subprocess.Popen(train_cmd(args, paced=True), cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out, deadline = [], time.monotonic() + timeout
    for line in proc.stdout:
        out.append(line)
        if line.strip() == f"{MARK} {batch}":
            proc.send_signal(sig)
            break
        if time.monotonic() > deadline:
            break
    rest, _ = proc.communicate(timeout=timeout)
    return proc.returncode, "".join(out) + rest


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren...), from /proc: W&B's service runs in its own
    session, so a process group kill misses it, but SLURM's job-wide SIGTERM does not."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree_at(args: list[str], batch: int, sig: int, timeout: int = 300) -> tuple[int, str, int]:
    """Like kill_at, but `sig` goes to the run and every process below it at once, as SLURM signals a job."""
    proc = subprocess.Popen(train_cmd(args, paced=True), cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out, killed, deadline = [], 0, time.monotonic() + timeout
    for line in proc.stdout:
        out.append(line)
        if line.strip() == f"{MARK} {batch}":
            for pid in [proc.pid, *descendants(proc.pid)]:
                try:
                    os.kill(pid, sig)
                    killed += 1
                except ProcessLookupError:
                    pass
            break
        if time.monotonic() > deadline:
            break
    rest, _ = proc.communicate(timeout=timeout)
    return proc.returncode, "".join(out) + rest, killed


# --- the run identities and records ------------------------------------------------------------------
def run_ids(overrides_per_run: list[list[str]]) -> list[str]:
    """The identity the train app gives each run (composed here with Hydra, as the app composes it)."""
    from lora_repro.run import plain_config, run_id_of
    from lora_repro.sweeps.compose import compose, hydra_context

    with hydra_context():
        return [run_id_of(plain_config(compose(o))) for o in overrides_per_run]


def finished(results: Path, run_id: str) -> dict | None:
    return records.finished_record(results, run_id)


def adapter_equal(a: dict, b: dict) -> bool:
    import torch
    from safetensors.torch import load_file

    x, y = load_file(f"{a['adapter_dir']}/adapter.safetensors"), load_file(f"{b['adapter_dir']}/adapter.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def same_result(rec: dict | None, ref: dict | None) -> bool:
    return (rec is not None and ref is not None and rec["metrics"] == ref["metrics"]
            and rec["history"] == ref["history"] and adapter_equal(rec, ref))


def summary_line(out: str) -> str:
    return next((line for line in out.splitlines() if line.startswith("sweep summary:")), "")


# --- the faults --------------------------------------------------------------------------------------
class Suite:
    def __init__(self, work: Path, log: Callable[[str], None] = print, only: list[str] | None = None):
        unknown = sorted(set(only or ()) - set(FAULTS))
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {', '.join(FAULTS)}")
        self.faults = [n for n in FAULTS if only is None or n in only]
        self.work, self.log = work, log
        self.results, self.reference = work / "results", work / "reference"
        self.expected: dict[str, str] = {}      # run_id -> what it is (every one must end with one record)
        self.outcomes: list[tuple[str, bool, str]] = []

    def args(self, *extra: str, results: Path | None = None) -> list[str]:
        return base_overrides(self.work, results or self.results) + list(extra)

    def expect(self, label: str, *extra: str) -> str:
        (rid,) = run_ids([self.args(*extra)])
        self.expected[rid] = label
        return rid

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.outcomes.append((name, bool(ok), detail))
        self.log(f"  {'survived' if ok else 'FAILED  '}  {name}: {detail}")

    def setup(self) -> None:
        from lora_repro.tasks.fixtures import write_fixture

        for task in ("glue/rte", "glue/mrpc"):
            write_fixture(task, self.work / "data" / task, n_train=32, n_eval=16)
        seeds = sorted({s for n in self.faults for s in FAULTS[n].reference_seeds})
        if not seeds:
            return
        out = train(["-m", *self.args(f"seed={','.join(map(str, seeds))}", results=self.reference)])
        if out.returncode != 0:
            raise RuntimeError(f"the uninterrupted reference runs failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")

    def reference_of(self, *extra: str) -> dict | None:
        (rid,) = run_ids([self.args(*extra, results=self.reference)])
        return finished(self.reference, rid)

    def resumed(self, out: str, progress: dict | None) -> tuple[bool, str]:
        """The rerun continued from the saved state: it says from which step, and trained only the rest."""
        if not progress:
            return False, "no saved state"
        done = progress["epoch"] * BATCHES_PER_EPOCH + progress["batches_done"]
        trained, said = batches_trained(out), f"{RESUMED} {progress['step']} " in out
        return said and trained == EPOCHS * BATCHES_PER_EPOCH - done, \
            (f"rerun {'said' if said else 'did NOT say'} '{RESUMED} {progress['step']}' and trained {trained} "
             f"micro-batches (expected {EPOCHS * BATCHES_PER_EPOCH} - {done})")

    @fault("sigterm-resume", reference_seeds=(1,))
    def sigterm_resume(self) -> None:
        rid = self.expect("seed=1 (SIGTERM, resumed)", "seed=1")
        code, out = kill_at(self.args("seed=1"), batch=5, sig=signal.SIGTERM)
        state = paths.state_dir(self.results, rid) / "state.pt"
        progress = _progress(state)
        stopped_mid_epoch = code == 128 + signal.SIGTERM and progress and \
            0 < progress["batches_done"] < BATCHES_PER_EPOCH
        again = train(self.args("seed=1"), mode="--count")
        resumed, how = self.resumed(again.stdout + again.stderr, progress)
        rec = finished(self.results, rid)
        equal = same_result(rec, self.reference_of("seed=1"))
        ok = bool(stopped_mid_epoch) and again.returncode == 0 and resumed and equal
        self.check("sigterm-resume", ok, f"exit {code}, state saved at step {progress and progress['step']} "
                   f"(epoch {progress and progress['epoch'] + 1}, batch {progress and progress['batches_done']}); "
                   f"{how}; the result {'equals' if equal else 'DIFFERS from'} the uninterrupted one"
                   + ("" if ok else f"\n{out[-2000:]}\n{again.stdout[-1500:]}{again.stderr[-1500:]}"))

    @fault("kill9-relaunch", reference_seeds=(2,))
    def kill9_relaunch(self) -> None:
        rid = self.expect("seed=2 (kill -9, relaunched)", "seed=2")
        code, out = kill_at(self.args("seed=2"), batch=BATCHES_PER_EPOCH + 4, sig=signal.SIGKILL)
        progress = _progress(paths.state_dir(self.results, rid) / "state.pt")
        again = train(self.args("seed=2"), mode="--count")
        resumed, how = self.resumed(again.stdout + again.stderr, progress)
        rec = finished(self.results, rid)
        equal = same_result(rec, self.reference_of("seed=2"))
        ok = code == -signal.SIGKILL and progress is not None and progress["batches_done"] == 0 and \
            again.returncode == 0 and resumed and equal
        self.check("kill9-relaunch", ok, f"killed (exit {code}) in epoch 2 with the checkpoint of epoch "
                   f"{progress and progress['epoch']} on disk; {how}; the result "
                   f"{'equals' if equal else 'DIFFERS from'} the uninterrupted run"
                   + ("" if ok else f"\n{out[-2000:]}\n{again.stdout[-1500:]}{again.stderr[-1500:]}"))

    @fault("sweep-crash")
    def sweep_crash(self) -> None:
        sweep = ["-m", *self.args("seed=3", "task=glue/rte,glue/mrpc")]
        rte = self.expect("sweep seed=3 glue/rte", "seed=3", "task=glue/rte")
        mrpc = self.expect("sweep seed=3 glue/mrpc (crashed, relaunched)", "seed=3", "task=glue/mrpc")
        # the jobs run in order in one process: the crash lands in mrpc's epoch 1 (batch 3 of its own)
        first = train(sweep, mode=f"--crash-at={EPOCHS * BATCHES_PER_EPOCH + 3}")
        failed = records.read_record(paths.record_path(self.results, mrpc))
        second = train(sweep)
        s1, s2 = summary_line(first.stdout), summary_line(second.stdout)
        ok = (first.returncode == 1 and "1 done, 0 skipped, 1 failed" in s1 and failed is not None
              and failed["status"] == "failed" and CRASH in failed["error"] and finished(self.results, rte)
              and second.returncode == 0 and "1 done, 1 skipped, 0 failed" in s2
              and finished(self.results, mrpc) is not None)
        self.check("sweep-crash", ok, f"first sweep exit {first.returncode} [{s1}]; relaunched "
                   f"[{s2}]" + ("" if ok else f"\n{first.stdout[-2000:]}{first.stderr[-2000:]}"
                                              f"\n{second.stdout[-1500:]}{second.stderr[-1500:]}"))

    @fault("corrupt-record", reference_seeds=(1,))
    def corrupt_record(self) -> None:
        import io

        from lora_repro.report.build import load_finished

        rid = self.expect("seed=1 (record corrupted, relaunched)", "seed=1")
        if finished(self.results, rid) is None:      # run alone (--only): make the finished record to corrupt
            train(self.args("seed=1"))
        path = paths.record_path(self.results, rid)
        text = path.read_text()
        path.write_text(text[: len(text) // 2])          # a torn write, as a broken disk or editor leaves it
        good, bad = records.load_records(self.results)
        reported = [p for p, _ in bad if Path(p) == path] and rid not in {r["run_id"] for r in good}
        warnings = io.StringIO()
        in_tables = load_finished(self.results, err=warnings)     # what the tables are built from
        reported = reported and f"skipping {path}" in warnings.getvalue() and \
            rid not in {r["run_id"] for r in in_tables}
        again = train(self.args("seed=1"))
        rec = finished(self.results, rid)
        ok = bool(reported) and again.returncode == 0 and rec is not None and \
            rec["metrics"] == self.reference_of("seed=1")["metrics"]
        self.check("corrupt-record", ok, f"load_records and the tables reported {len(bad)} bad file(s) and "
                   f"skipped it; the relaunch {'rewrote' if ok else 'did NOT rewrite'} a complete record"
                   + ("" if ok else f"\n{again.stdout[-1500:]}{again.stderr[-1500:]}"))

    @fault("concurrent-sweeps")
    def concurrent_sweeps(self) -> None:
        rids = {seed: self.expect(f"concurrent sweeps seed={seed}", f"seed={seed}") for seed in (5, 6, 7)}
        cmds = [train_cmd(["-m", *self.args(f"seed={seeds}")]) for seeds in ("6,5", "6,7")]
        lock = paths.run_lock(self.results, rids[6])
        lock.parent.mkdir(parents=True, exist_ok=True)
        with records.file_lock(lock, blocking=False):     # "another process" is training seed 6 meanwhile
            procs = [subprocess.Popen(c, cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True) for c in cmds]
            outs = [p.communicate(timeout=600)[0] for p in procs]
        deferred = sum(o.count("is running in another process") for o in outs)
        after = train(["-m", *self.args("seed=6,5")])      # the lock is free now: seed 6 trains, 5 is skipped
        outs.append(after.stdout + after.stderr)
        lines = [summary_line(o) for o in outs]
        trained = sum(o.count(STARTED) for o in outs)
        ok = all(p.returncode == 0 for p in procs) and after.returncode == 0 and deferred == 2 and \
            trained == 3 and all("0 failed" in line for line in lines) and \
            "1 done, 1 skipped" in lines[2]
        self.check("concurrent-sweeps", ok, f"with seed 6's lock held, {deferred} of 2 sweeps deferred it to the "
                   f"holder; 3 distinct runs in 6 jobs trained {trained} time(s); "
                   + " | ".join(lines) + ("" if ok else "\n" + "\n".join(o[-2000:] for o in outs)))

    @fault("sigterm-tree-wandb", reference_seeds=(4,))
    def sigterm_tree_wandb(self) -> None:
        """SLURM's way: SIGTERM to every process of the job (W&B's service too), with the default W&B logger."""
        from lora_repro.run.wandb_logger import read_offline_run

        rid = self.expect("seed=4 (SIGTERM to the process tree, W&B on)", "seed=4")
        args = [a for a in self.args("seed=4") if not a.startswith("logger=")] + ["logger=wandb"]
        code, out, killed = kill_tree_at(args, batch=5, sig=signal.SIGTERM)
        progress = _progress(paths.state_dir(self.results, rid) / "state.pt")
        again = train(args, mode="--count")
        resumed, how = self.resumed(again.stdout + again.stderr, progress)
        rec = finished(self.results, rid)
        equal = same_result(rec, self.reference_of("seed=4"))
        wandb_ids = [read_offline_run(d)["id"] for d in (self.results / "wandb").glob(f"offline-run-*-{rid}")]
        one_wandb_run = len(wandb_ids) >= 2 and set(wandb_ids) == {rid}
        ok = code == 128 + signal.SIGTERM and progress is not None and again.returncode == 0 and resumed \
            and equal and one_wandb_run
        self.check("sigterm-tree-wandb", ok, f"SIGTERM to {killed} processes (W&B's service among them): exit "
                   f"{code}, state saved at step {progress and progress['step']}; {how}; the result "
                   f"{'equals' if equal else 'DIFFERS from'} the uninterrupted one; {len(wandb_ids)} W&B segments "
                   f"with {len(set(wandb_ids))} id(s)"
                   + ("" if ok else f"\n{out[-2500:]}\n{again.stdout[-1500:]}{again.stderr[-1500:]}"))

    def records_lost(self) -> tuple[int, list[str]]:
        """Expected identities without exactly one well-formed finished record (plus stray temp files)."""

        good, bad = records.load_records(self.results)
        problems = [f"unreadable record {p}: {why}" for p, why in bad]
        lost = 0
        for rid, label in self.expected.items():
            mine = [r for r in good if r["run_id"] == rid and r.get("status") == records.STATUS_FINISHED]
            if len(mine) != 1:
                lost += 1
                problems.append(f"{label} ({rid}): {len(mine)} finished records")
        strays = [p.name for p in paths.runs_dir(self.results).iterdir() if p.suffix == ".tmp"]
        problems += [f"stray temp file {s}" for s in strays]
        return lost, problems

    def run(self) -> int:
        t0 = time.perf_counter()
        self.log(f"fault suite in {self.work}: reference runs ...")
        self.setup()
        for name in self.faults:
            try:
                FAULTS[name](self)
            except Exception as e:  # noqa: BLE001 - a fault that breaks the harness counts as not survived
                self.check(name, False, f"{type(e).__name__}: {e}")
        lost, problems = self.records_lost()
        for p in problems:
            self.log(f"  problem: {p}")
        survived = sum(ok for _, ok, _ in self.outcomes)
        self.log(f"({time.perf_counter() - t0:.0f} s, {len(self.expected)} expected records)")
        print(f"faults: {len(self.outcomes)} injected, {survived} survived, {lost} records lost", flush=True)
        return 0 if survived == len(self.outcomes) and lost == 0 and not problems else 1


def _progress(state: Path) -> dict | None:
    from lora_repro.train.state import load_progress  # data only: a state file never runs code
    return load_progress(state.parent)


# --- child modes -------------------------------------------------------------------------------------
def _hooked_train(argv: list[str], pace_s: float = 0.0, crash_at: int | None = None) -> None:
    """The train app with every training micro-batch announced (counted across the process's runs), slowed by
    `pace_s` (the kill lands mid-epoch), and a crash at micro-batch `crash_at`, through the trainer's batch hook."""
    from lora_repro.train.loop import BATCH_HOOKS

    count = [0]

    def hook(epoch: int, batch: int, step: int) -> None:
        count[0] += 1
        print(f"{MARK} {count[0]}", flush=True)
        if count[0] == crash_at:
            raise RuntimeError(f"{CRASH} at micro-batch {crash_at}")
        time.sleep(pace_s)
    BATCH_HOOKS.append(hook)
    _train(argv)


def _train(argv: list[str]) -> None:
    from lora_repro.app import main
    main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--paced"]:
        _hooked_train(argv[1:], pace_s=PACE_S)
        return 0
    if argv[:1] == ["--count"]:
        _hooked_train(argv[1:])
        return 0
    if argv[:1] and argv[0].startswith("--crash-at="):
        _hooked_train(argv[1:], crash_at=int(argv[0].split("=", 1)[1]))
        return 0
    if argv[:1] == ["--train"]:
        _train(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python tools/faults.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", help="where runs are written (default: a temp dir, removed when all passed)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--only", help=f"comma-separated faults to run (default: all of {', '.join(FAULTS)})")
    parser.add_argument("--mutate", help="test-only: run against the code with these safety mechanisms switched "
                        f"off ({', '.join(mutations.KNOWN)}); the faults that rely on them must FAIL")
    args = parser.parse_args(argv)
    if args.mutate:
        for m in args.mutate.split(","):
            mutations.active(m)           # an unknown name is an error, not a mutant that mutates nothing
        os.environ[mutations.ENV] = args.mutate     # the children inherit it
    work = Path(args.workdir or tempfile.mkdtemp(prefix="lora-repro-faults-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    code = Suite(work, only=args.only.split(",") if args.only else None).run()
    if code == 0 and not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    elif code:
        print(f"work dir kept for inspection: {work}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
