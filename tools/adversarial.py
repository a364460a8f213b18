"""Re-run the adversarial reliability review's cases (shared/reviews/reliability_adversarial.md) on this code.

`.venv/bin/python tools/adversarial.py` (a few minutes on 2 cores, offline, CPU) prints one line per case,
`<id> <outcome> <detail>`, and a summary line with the review's counts:

    adversarial: N cases: a clear, b traceback, c silent, d data lost, e OK, f code exec (g not run)

Outcomes, as the review defines them: clear (stops without a traceback, naming the problem), traceback (an
unhandled exception), silent (finishes with a wrong or meaningless result), data lost, OK (behaves as
documented), code exec (file content ran code). Config and data cases go through Hydra compose + `validate`
in this process (what the app does before it loads a model); a case that passes validation but should not
is then run through the app to see what it does. File and fault cases build real runs in subprocesses.
`--only C,D` runs some sections (C config, D data, F files, K faults, S security); `--with-faults` adds
the fault suite and its mutants (K15, K16; about 5 more minutes). Exit status: 0 when no case is a
traceback, silent, data lost or code exec.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

OUTCOMES = ("clear", "traceback", "silent", "data lost", "OK", "code exec")
BAD = ("traceback", "silent", "data lost", "code exec")


@dataclass
class Result:
    case: str
    outcome: str            # one of OUTCOMES, or "not run"
    detail: str


def env() -> dict:
    e = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
         "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return e


def first_line(text: str, needle: str = "") -> str:
    """The first line holding `needle` (case-insensitive), else the last line that is not Hydra's hint."""
    lines = [line for line in text.splitlines() if line.strip() and "HYDRA_FULL_ERROR" not in line]
    hit = [line for line in lines if needle and needle.lower() in line.lower()]
    return (hit or lines or [""])[-1 if not hit else 0].strip()[:220]


class Scratch:
    """The review's shorthand: fixture data, a results dir, the tiny overrides `T`."""

    def __init__(self, root: Path):
        from lora_repro.tasks.fixtures import write_fixture

        self.root = root
        self.sst2, self.stsb, self.res = root / "sst2", root / "stsb", root / "res"
        write_fixture("glue/sst2", self.sst2)
        write_fixture("glue/stsb", self.stsb)

    def T(self, data: Path | None = None, results: Path | None = None) -> list[str]:
        return ["model=tiny-roberta", "task=glue/sst2", "method=lora", "trainer=tiny", "logger=none",
                "progress_bar=false", "task.max_length=64", f"task.data_dir={data or self.sst2}",
                f"results_dir={results or self.res}"]

    def copy_data(self, name: str, src: Path | None = None) -> Path:
        d = self.root / "data" / name
        shutil.copytree(src or self.sst2, d)
        return d


def app(args: list[str], timeout: int = 600, torchrun: int = 0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "experiments" / "train.py"), *args]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={torchrun}", *cmd[1:]]
    return subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)


def app_outcome(p: subprocess.CompletedProcess, expect_refuse: bool) -> tuple[str, str]:
    """How a run through the app ended: a traceback, a clear stop, a finished run."""
    err = p.stderr + p.stdout
    if "Traceback (most recent call last)" in err or "Error executing job" in err:
        raised = [line for line in err.splitlines() if re.match(r"^[\w.]+(Error|Exception)\b.*:", line)]
        return "traceback", (raised[-1].strip()[:220] if raised else first_line(err, "Error"))
    if p.returncode != 0:
        needle = next((n for n in ("config error", "Could not", "error") if n in err), "")
        return "clear", f"exit {p.returncode}: {first_line(err, needle)}"
    return ("silent" if expect_refuse else "OK"), f"exit 0: {first_line(p.stdout + p.stderr, 'finished')}"


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from lora_repro.app import CONF_DIR
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return hydra_compose("config", overrides=overrides)


def check_config(overrides: list[str], expect_refuse: bool = True, needle: str = "") -> tuple[str, str]:
    """Compose + validate in this process; a config that passes but should not is run through the app."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from lora_repro.checks import ConfigError
    from lora_repro.run import validate
    try:
        validate(compose(overrides))
    except ConfigError as e:
        text = " | ".join(e.problems)
        if needle and needle not in text:
            return "clear", f"(does not name {needle!r}) {text}"
        return "clear", text
    except (HydraException, OmegaConfBaseException) as e:     # the app prints Hydra's message and exits 2
        return "clear", f"Hydra: {str(e).splitlines()[0][:200]}"
    except Exception as e:  # noqa: BLE001
        return "traceback", f"{type(e).__name__}: {str(e)[:200]}"
    if not expect_refuse:
        return "OK", "passes validation"
    return app_outcome(app(overrides), expect_refuse=True)


# --- 1. config values -------------------------------------------------------------------------------
CONFIG_CASES: list[tuple[str, list[str], str]] = [      # id, overrides (after T), what the error must name
    ("C1", ["method.r=0"], "r=0"), ("C2", ["method.r=-1"], "r=-1"), ("C3", ["method.r=1.5"], "r=1.5"),
    ("C4", ["method.r=abc"], "r='abc'"), ("C5", ["method.r=true"], "r=True"), ("C6", ["method.r={q:8}"], "r="),
    ("C7", ["method.alpha=0"], "alpha=0"), ("C8", ["method.alpha=-8"], "alpha=-8"),
    ("C9", ["method.alpha=inf"], "alpha=inf"), ("C9b", ["method.alpha=nan"], "alpha=nan"),
    ("C10", ["method.targets=[]"], "targets"), ("C11", ["method.targets=[q,z]"], "'z'"),
    ("C12", ["method.targets=q"], "targets"), ("C13", ["method.targets=[q,q]"], "twice"),
    ("C14", ["method.targets=null"], "targets"), ("C15", ["method.dropout=1.5"], "dropout"),
    ("C16", ["trainer.lr=-1"], "trainer.lr"), ("C17", ["trainer.lr=inf"], "trainer.lr"),
    ("C18", ["trainer.epochs=0"], "trainer.epochs"), ("C19", ["trainer.batch_size=0"], "trainer.batch_size"),
    ("C20", ["trainer.eval_batch_size=0", "trainer.grad_accum=0"], "trainer."),
    ("C21", ["task.max_length=0"], "task.max_length"), ("C22", ["task.max_length=129"], "task.max_length"),
    ("C23", ["method=nosuch"], "method/nosuch"), ("C24", ["task=glue/nosuch"], "task/glue/nosuch"),
    ("C25", ["model=nosuch"], "model/nosuch"), ("C26", ["method.name=nosuch"], "nosuch"),
    ("C27", ["method.rank=8"], "rank"), ("C28", ["+method.rank=8"], "rank"), ("C29", ["+sede=3"], "sede"),
    ("C29b", ["+trainer.lrr=1e-3"], "lrr"), ("C29c", ["+task.max_len=64"], "max_len"),
    ("C30", ["trainer.precision=fp8"], "precision"), ("C32", ["seed=abc"], "seed"),
    ("C33", ["seed=-1"], "seed"), ("C34", ["seed=99999999999999999999"], "seed"), ("C35", ["seed=true"], "seed"),
    ("C36", ["trainer.adam_eps=-1"], "adam_eps"), ("C37", ["trainer.adam_eps=abc"], "adam_eps"),
    ("C38", ["trainer.weight_decay=inf"], "weight_decay"), ("C39", ["trainer.log_every_steps=0", "logger=wandb"],
                                                              "log_every_steps"),
    ("C40", ["trainer.warmup_ratio=1.5", "trainer.warmup_steps=-1", "trainer.label_smoothing=1.0",
             "trainer.max_grad_norm=-1", "trainer.adam_betas=[0.9,1.5]", "trainer.weight_decay=-1",
             "trainer.save_every_steps=-1", "trainer.eval_epochs=some"], "eval_epochs"),
    ("C41", ["task.max_train_samples=0", "task.max_eval_samples=-1"], "max_train_samples"),
    ("C42", ["+trainer.global_batch_size=7"], "global_batch_size"),
    ("C46", ["method=prefix_embed", "method.prefix_len=0", "method.infix_len=0"], "prefix_len"),
    ("C47", ["method=ft_top2", "method.layers=99"], "layers"), ("C47b", ["method=adapter_h", "method.r=0"], "r=0"),
    ("C48", ["model=tiny-gpt2"], "encoder"), ("C49", ["method_init_from=/nonexistent/adapter"], "method_init_from"),
]


def config_section(s: Scratch) -> list[Result]:
    out = []
    for cid, extra, needle in CONFIG_CASES:
        outcome, detail = check_config(s.T() + extra, needle=needle)
        out.append(Result(cid, outcome, detail))
    # every problem at once (C43)
    outcome, detail = check_config(s.T() + ["method.r=0", "method.alpha=0", "method.targets=[q,z]", "trainer.lr=0",
                                            "trainer.epochs=0"])
    listed = all(k in detail for k in ("r=0", "alpha=0", "'z'", "trainer.lr", "trainer.epochs"))
    out.append(Result("C43", outcome if listed or outcome != "clear" else "silent",
                      ("all 5 problems listed: " if listed else "NOT all problems listed: ") + detail))
    for cid, extra in (("C31", ["trainer.precision=fp16"]), ("C44", ["method.r=100000"]),
                       ("C50", ["results_dir=null"])):
        outcome, detail = check_config(s.T() + extra, expect_refuse=False)
        out.append(Result(cid, outcome, detail))
    # through the CLI: exit statuses (2 for every config error, Hydra's included)
    for cid, extra in (("C1cli", ["method.r=0"]), ("C23cli", ["method=nosuch"]), ("C27cli", ["method.rank=8"])):
        p = app(s.T() + extra)
        outcome, detail = app_outcome(p, expect_refuse=True)
        if outcome == "clear" and p.returncode != 2:
            detail = f"(exit {p.returncode}, the docs say 2) {detail}"
        out.append(Result(cid, outcome, detail))
    p = app(["-m", *s.T(), "method.r=0,8"])
    outcome, detail = app_outcome(p, expect_refuse=True)
    out.append(Result("C51", outcome, first_line(p.stdout + p.stderr, "sweep aborted") if outcome == "clear"
                      else detail))
    return out


# --- 2. bad data ------------------------------------------------------------------------------------
def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def edit_rows(d: Path, split: str, fn: Callable[[int, dict], None]) -> Path:
    rows = jsonl(d / f"{split}.jsonl")
    for i, r in enumerate(rows):
        fn(i, r)
    write_jsonl(d / f"{split}.jsonl", rows)
    return d


def data_cases(s: Scratch) -> list[tuple[str, Path | str, str, bool]]:
    """(id, data_dir, task, expect_refuse)."""
    c = s.copy_data
    cases: list[tuple[str, Path | str, str, bool]] = [("D1", s.root / "missing", "glue/sst2", True),
                                                      ("D2", "/etc/passwd", "glue/sst2", True)]
    d = s.root / "data" / "empty"
    d.mkdir(parents=True)
    cases.append(("D3", d, "glue/sst2", True))
    d = s.root / "data" / "only_train"
    d.mkdir()
    shutil.copy(s.sst2 / "train.jsonl", d)
    cases.append(("D4", d, "glue/sst2", True))
    d = c("empty_train")
    (d / "train.jsonl").write_text("")
    cases.append(("D5", d, "glue/sst2", True))
    d = c("empty_val")
    (d / "validation.jsonl").write_text("")
    cases.append(("D6", d, "glue/sst2", True))
    d = c("bad_line")
    lines = (d / "train.jsonl").read_text().splitlines()
    lines[10] = lines[10][:-5]
    (d / "train.jsonl").write_text("\n".join(lines) + "\n")
    cases.append(("D7", d, "glue/sst2", True))
    d = c("columns")
    for split in ("train", "validation"):
        write_jsonl(d / f"{split}.jsonl", [{"text": r["sentence"], "labels": r["label"]}
                                           for r in jsonl(d / f"{split}.jsonl")])
    cases.append(("D8", d, "glue/sst2", True))
    cases.append(("D9", edit_rows(c("label7_train"), "train", lambda i, r: r.update(label=7) if i == 3 else None),
                  "glue/sst2", True))
    cases.append(("D10", edit_rows(c("label7_val"), "validation", lambda i, r: r.update(label=7) if i % 4 == 0
                                   else None), "glue/sst2", True))
    cases.append(("D11", edit_rows(c("label_neg"), "validation", lambda i, r: r.update(label=-1)), "glue/sst2", True))
    cases.append(("D12", edit_rows(c("label_str"), "train", lambda i, r: r.update(
        label=["negative", "positive"][r["label"]])), "glue/sst2", True))
    cases.append(("D13", edit_rows(c("label_null"), "train", lambda i, r: r.update(label=None) if i == 2 else None),
                  "glue/sst2", True))
    cases.append(("D14", edit_rows(c("label_frac"), "train", lambda i, r: r.update(label=0.7) if i == 2 else None),
                  "glue/sst2", True))
    cases.append(("D15", edit_rows(c("sentence_null"), "train", lambda i, r: r.update(sentence=None) if i == 2
                                   else None), "glue/sst2", True))
    cases.append(("D16", edit_rows(c("stsb_nan_train", s.stsb), "train", lambda i, r: r.update(label=float("nan"))
                                   if i == 2 else None), "glue/stsb", True))
    cases.append(("D17", edit_rows(c("stsb_nan_val", s.stsb), "validation",
                                   lambda i, r: r.update(label=float("nan")) if i == 2 else None), "glue/stsb", True))
    cases.append(("D18", edit_rows(c("stsb_99", s.stsb), "validation", lambda i, r: r.update(label=99.0) if i < 3
                                   else None), "glue/stsb", True))
    cases.append(("D19", edit_rows(c("huge_sentence"), "train", lambda i, r: r.update(sentence="word " * 200_000)
                                   if i == 0 else None), "glue/sst2", False))
    d = c("bad_bytes")
    raw = (d / "train.jsonl").read_bytes().split(b"\n")
    raw[1] = raw[1].replace(b'"sentence": "', b'"sentence": "\xff\xfe', 1)
    (d / "train.jsonl").write_bytes(b"\n".join(raw))
    cases.append(("D20", d, "glue/sst2", True))
    d = s.root / "data" / "csv_quoted"
    d.mkdir()
    for split in ("train", "validation"):
        rows = jsonl(s.sst2 / f"{split}.jsonl")
        body = "".join(f'"{r["sentence"]}",{r["label"]},{r["idx"]}\n' for r in rows[1:])
        (d / f"{split}.csv").write_text('sentence,label,idx\n"he said ""hi, there""\nand, then ""left""",1,0\n' + body)
    cases.append(("D21", d, "glue/sst2", False))
    d = s.root / "data" / "csv_unbalanced"
    shutil.copytree(s.root / "data" / "csv_quoted", d)
    (d / "train.csv").write_text((d / "train.csv").read_text() + '"never closed,1,99\n')
    cases.append(("D22", d, "glue/sst2", True))
    d = c("mixed")
    (d / "validation.csv").write_text("sentence,label,idx\n" + "".join(
        f"{r['sentence']},{r['label']},{r['idx']}\n" for r in jsonl(d / "validation.jsonl")))
    (d / "validation.jsonl").unlink()
    cases.append(("D23", d, "glue/sst2", True))
    d = c("both")
    for split in ("train", "validation"):
        (d / f"{split}.csv").write_text("sentence,label,idx\n" + "".join(
            f"{r['sentence']},1,{r['idx']}\n" for r in jsonl(d / f"{split}.jsonl")))
    cases.append(("D24", d, "glue/sst2", True))
    return cases


def data_section(s: Scratch) -> list[Result]:
    out = []
    for cid, d, task, refuse in data_cases(s):
        over = s.T(data=d) + ([f"task={task}"] if task != "glue/sst2" else [])
        if task != "glue/sst2":
            over = [o for o in over if not o.startswith("task=glue/sst2")]
        outcome, detail = check_config(over, expect_refuse=refuse)
        out.append(Result(cid, outcome, detail))
    # D25: glob characters in data_dir read exactly the named folder
    from lora_repro.tasks import get_task
    g = s.root / "g"
    named, sibling = g / "sst2[12]", g / "sst21"
    shutil.copytree(s.sst2, named)
    shutil.copytree(s.sst2, sibling)
    for split in ("train", "validation"):
        edit_rows(sibling, split, lambda i, r: r.update(sentence="DECOY " + r["sentence"]))
    try:
        ds = get_task("glue/sst2").load(named)
        decoy = any(x.startswith("DECOY") for x in [*ds["train"]["sentence"], *ds["validation"]["sentence"]])
        out.append(Result("D25", "silent" if decoy else "OK",
                          "read the sibling sst21" if decoy else "read exactly the named folder sst2[12]"))
    except Exception as e:  # noqa: BLE001
        out.append(Result("D25", "traceback", f"{type(e).__name__}: {e}"))
    return out


# --- 3. bad files -----------------------------------------------------------------------------------
def tables(results: Path) -> tuple[str, str]:
    """`lora-repro tables` in this process: (outcome if it crashed or not, its stderr)."""
    from lora_repro.report import main as tables_main
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            tables_main(["--results", str(results), "--out", str(results.parent / "tables_out"), "--tables", "2"])
    except Exception as e:  # noqa: BLE001
        return "traceback", f"{type(e).__name__}: {str(e)[:200]}"
    return "ran", err.getvalue()


def records_case(s: Scratch, rec_path: Path, name: str, write: Callable[[Path], None]) -> Path:
    r = s.root / "recs" / name
    (r / "runs").mkdir(parents=True)
    shutil.copy(rec_path, r / "runs" / rec_path.name)
    write(r / "runs")
    return r


def finished_run(s: Scratch, name: str, *extra: str, data: Path | None = None) -> tuple[Path, dict]:
    res = s.root / name
    p = app(s.T(data=data, results=res) + list(extra))
    recs = list((res / "runs").glob("*.json"))
    if p.returncode != 0 or len(recs) != 1:
        raise RuntimeError(f"setup run {name} failed: {p.stderr[-2000:]}")
    return recs[0], json.loads(recs[0].read_text())


def files_section(s: Scratch) -> list[Result]:
    out = []
    rec_path, rec = finished_run(s, "res_files")
    text = rec_path.read_text()

    def record_file(cid, name, write, bad_name, *also):
        r = records_case(s, rec_path, name, write)
        outcome, err = tables(r)
        if outcome == "traceback":
            out.append(Result(cid, outcome, err))
        else:
            named = any(n in err for n in (bad_name, *also))     # the file (or, F6, the run id and the problem)
            out.append(Result(cid, "clear" if named else "silent",
                              first_line(err, bad_name) or first_line(err, also[0] if also else bad_name)
                              if named else f"not reported: {err[:150]!r}"))

    record_file("F1", "trunc", lambda d: (d / "trunc.json").write_text(text[: len(text) // 2]), "trunc.json")
    record_file("F2", "empty", lambda d: (d / "empty.json").write_text(""), "empty.json")
    record_file("F3", "list", lambda d: (d / "list.json").write_text("[]"), "list.json")
    record_file("F4", "latin1", lambda d: (d / "latin1.json").write_bytes(b'{"a": "\xff"}'), "latin1.json")
    record_file("F5", "noconfig", lambda d: (d / "noconfig.json").write_text(
        json.dumps({k: v for k, v in rec.items() if k != "config"})), "noconfig.json")
    record_file("F6", "mstr", lambda d: (d / "mstr.json").write_text(
        json.dumps({**rec, "run_id": "m" * 16, "metrics": {**rec["metrics"], "accuracy": "abc"}})), "mstr.json",
                "m" * 16 + ": no metric 'accuracy'")
    record_file("F7", "nan", lambda d: (d / "nan.json").write_text(
        json.dumps({**rec, "run_id": "n" * 16, "metrics": {**rec["metrics"], "accuracy": float("nan")}})), "nan.json")
    record_file("F8", "seedlist", lambda d: (d / "seedlist.json").write_text(
        json.dumps({**rec, "run_id": "s" * 16, "seed": [1]})), "seedlist.json")
    record_file("F9", "dangling", lambda d: os.symlink(d / "nowhere.json", d / "dangling.json"), "dangling.json")
    record_file("F10", "adir", lambda d: (d / "adir.json").mkdir(), "adir.json")
    record_file("F11", "mnli", lambda d: (d / "mnli.json").write_text(json.dumps({**rec, "task": "glue/mnli"})),
                "mnli.json")
    record_file("F12", "seed1", lambda d: (d / "seed1.json").write_text(
        json.dumps({**rec, "seed": 1, "metrics": {**rec["metrics"], "accuracy": 99.9}})), "seed1.json")
    mode = rec_path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    ok = mode == 0o666 & ~umask
    out.append(Result("F13", "OK" if ok else "traceback",
                      f"record mode {oct(mode)} (umask {oct(umask)})"
                      + ("" if ok else ": another user cannot read it")))
    out += state_cases(s)
    out += adapter_cases(s, rec)
    out += data_loss_cases(s)
    return out


def state_cases(s: Scratch) -> list[Result]:
    out = []
    res = s.root / "res_state"
    app(s.T(results=res) + ["+stop_after_steps=5", "trainer.epochs=3"])
    states = list(res.glob("checkpoints/*/state/state.pt"))
    if not states:
        return [Result("F14", "not run", "no state was saved")]
    state = states[0]
    good = state.read_bytes()
    state.write_bytes(good[: len(good) // 2])
    p = app(s.T(results=res) + ["trainer.epochs=3"])
    outcome, detail = app_outcome(p, expect_refuse=True)
    if outcome == "clear" and str(state.parent) not in p.stderr + p.stdout:
        detail = f"(does not name the state file) {detail}"
    out.append(Result("F14", outcome, detail))
    p = app(s.T(results=res) + ["trainer.epochs=3", "resume=false"])
    out.append(Result("F15", "OK" if p.returncode == 0 else app_outcome(p, False)[0],
                      f"resume=false: exit {p.returncode}"))
    # F16 / S1: a pickle that runs code, in place of the state
    res = s.root / "res_pickle"
    app(s.T(results=res) + ["+stop_after_steps=1"])
    marker = s.root / "PWNED"
    states = list(res.glob("checkpoints/*/state/state.pt"))
    if not states:
        return [*out, Result("F16", "not run", "no state was saved")]
    code = (f"import os, torch\nclass P:\n    def __reduce__(self):\n        return (os.system, ('touch {marker}',))\n"
            f"torch.save({{'progress': P()}}, {str(states[0])!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=env())
    p = app(s.T(results=res))
    if marker.exists():
        out.append(Result("F16", "code exec", "the pickled command ran on resume"))
    else:
        outcome, detail = app_outcome(p, expect_refuse=True)
        out.append(Result("F16", outcome, f"no code ran; {detail}"))
    return out


def adapter_cases(s: Scratch, rec: dict) -> list[Result]:
    import torch

    from lora_repro.methods.io import apply_adapter, load_adapter
    from lora_repro.models import load_model
    from lora_repro.tasks import get_task

    task = get_task("glue/sst2")
    src = Path(rec["adapter_dir"])
    out = []

    def attempt(cid, mangle, loader="apply", expect_refuse=True, into=task):
        d = s.root / "adapters" / cid
        shutil.copytree(src, d)
        mangle(d)
        model, _ = load_model(rec["config"]["model"], into)
        try:
            if loader == "apply":
                apply_adapter(model, d)
            else:
                from lora_repro.methods import apply_method
                apply_method(model, rec["method_config"])
                load_adapter(model, d)
        except Exception as e:  # noqa: BLE001
            named = str(d) in str(e) or d.name in str(e)
            kind = type(e).__name__
            clear = named and kind not in ("KeyError", "JSONDecodeError", "SafetensorError", "OSError")
            out.append(Result(cid, "clear" if clear else "traceback", f"{kind}: {str(e)[:180]}"))
            return
        out.append(Result(cid, "silent" if expect_refuse else "OK", "loaded without an error"))

    w, c = "adapter.safetensors", "adapter_config.json"

    def truncate(d):
        b = (d / w).read_bytes()
        (d / w).write_bytes(b[: len(b) // 2])

    def big_header(d):
        b = (d / w).read_bytes()
        (d / w).write_bytes((10**12).to_bytes(8, "little") + b[8:])

    def scramble(d):
        b = bytearray((d / w).read_bytes())
        b[-200:] = os.urandom(200)
        (d / w).write_bytes(bytes(b))

    def edit_config(**changes):
        def f(d):
            cfg = json.loads((d / c).read_text())
            for k, v in changes.items():
                if v is None:
                    cfg.pop(k, None)
                else:
                    cfg[k] = v
            (d / c).write_text(json.dumps(cfg))
        return f

    attempt("F17", truncate)
    attempt("F18", lambda d: (d / w).write_bytes(b""))
    attempt("F19", big_header)
    attempt("F20", scramble)
    attempt("F21", lambda d: (d / c).write_text((d / c).read_text()[:10]))
    attempt("F22", edit_config(alpha=None), loader="load")
    attempt("F23", edit_config(r=4))
    attempt("F24", edit_config(r=4), loader="load")
    attempt("F25", edit_config(alpha=16))
    attempt("F26", edit_config(targets=["q", "k", "v", "o"]))
    attempt("F29", lambda d: None, into=get_task("glue/mnli"))      # an SST-2 adapter into a 3-label model
    del torch
    return out


def data_loss_cases(s: Scratch) -> list[Result]:
    """F34: a preempted rerun (skip_existing=false) must not replace the finished run's adapter; F35: nor must
    a rerun that fails on bad data replace the finished record."""
    data = s.copy_data("rr")
    rec_path, rec = finished_run(s, "res_rr", "trainer.epochs=3", data=data)
    weights = Path(rec["adapter_dir"]) / "adapter.safetensors"
    before = hashlib.sha256(weights.read_bytes()).hexdigest()
    edit_rows(data, "train", lambda i, r: r.update(sentence=r["sentence"] + " again"))
    app(s.T(data=data, results=s.root / "res_rr") + ["trainer.epochs=3", "skip_existing=false",
                                                    "+stop_after_steps=12"])
    after = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists() else "missing"
    same_record = json.loads(rec_path.read_text()).get("created_at") == rec["created_at"]
    if after != before and same_record:
        f34 = Result("F34", "data lost", f"adapter {before[:8]} -> {after[:8]} under the unchanged finished record")
    else:
        f34 = Result("F34", "OK", f"adapter {before[:8]} kept; record {'unchanged' if same_record else 'rewritten'}")
    edit_rows(data, "train", lambda i, r: r.update(label=7) if i == 0 else None)
    p = app(s.T(data=data, results=s.root / "res_rr") + ["trainer.epochs=3", "skip_existing=false"])
    kept = json.loads(rec_path.read_text()).get("created_at") == rec["created_at"]
    outcome, detail = app_outcome(p, expect_refuse=True)
    return [f34, Result("F35", ("OK" if outcome == "clear" else outcome) if kept else "data lost",
                        f"finished record {'kept' if kept else 'REPLACED'}; {detail}")]


# --- 4. faults --------------------------------------------------------------------------------------
def faults_section(s: Scratch, with_faults: bool) -> list[Result]:
    out = []
    # K14: stopped under torchrun with 2 processes, relaunched in one
    res = s.root / "res_k14"
    p = app(s.T(results=res) + ["+stop_after_steps=3"], torchrun=2)
    if not list(res.glob("checkpoints/*/state/state.pt")):
        out.append(Result("K14", "not run", f"the torchrun launch left no state: {first_line(p.stderr)}"))
    else:
        p = app(s.T(results=res))
        outcome, detail = app_outcome(p, expect_refuse=True)
        out.append(Result("K14", outcome, detail))
    # K7: two identical runs at once: one trains, the other defers
    res = s.root / "res_k7"
    procs = [subprocess.Popen([sys.executable, str(REPO / "experiments" / "train.py"), *s.T(results=res)], cwd=REPO,
                              env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    trained = sum("trainable (paper count)" in o for o in outs)
    out.append(Result("K7", "OK" if trained == 1 and len(list((res / "runs").glob("*.json"))) == 1 else "silent",
                      f"{trained} of 2 trained; " + "; ".join(first_line(o, "another process") for o in outs
                                                               if "another process" in o)))
    # K9: a sweep whose job 0 has a seed NumPy rejects: refused as a config error before any job
    p = app(["-m", *s.T(results=s.root / "res_k9"), "seed=-1,1"])
    out.append(Result("K9", *app_outcome(p, expect_refuse=True)))
    if with_faults:
        p = subprocess.run([sys.executable, str(REPO / "tools" / "faults.py")], cwd=REPO, env=env(),
                           capture_output=True, text=True, timeout=1200)
        line = first_line(p.stdout, "faults:")
        out.append(Result("K15", "OK" if p.returncode == 0 else "silent", line))
        p = subprocess.run([sys.executable, str(REPO / "tools" / "faults.py"), "--mutate", "no-resume,no-lock",
                            "--only", "sigterm-resume,kill9-relaunch,concurrent-sweeps"], cwd=REPO, env=env(),
                           capture_output=True, text=True, timeout=1200)
        line = first_line(p.stdout, "faults:")
        out.append(Result("K16", "OK" if p.returncode == 1 and " 0 survived" in line else "silent",
                          f"mutants (no-resume, no-lock): {line}"))
    else:
        out += [Result("K15", "not run", "pass --with-faults"), Result("K16", "not run", "pass --with-faults")]
    return out


# --- 5. security ------------------------------------------------------------------------------------
def security_section(s: Scratch) -> list[Result]:
    odd = s.root / "odd dir" / f"ü;$(touch {s.root}/INJECTED)" / ".." / ".." / "r_trav"
    p = app(s.T(results=odd) + ["method.r=0"])
    injected = (s.root / "INJECTED").exists()
    return [Result("S3", "code exec" if injected else "OK",
                   f"odd results_dir used as a literal path (exit {p.returncode}); nothing executed"
                   if not injected else "a shell command in results_dir ran")]


SECTIONS = {"C": config_section, "D": data_section, "F": files_section, "S": security_section}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/adversarial.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="C,D,F,K,S", help="sections to run: C,D,F,K,S (default: all)")
    parser.add_argument("--with-faults", action="store_true", help="also the fault suite and its mutants (K15, K16)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir")
    args = parser.parse_args(argv)
    os.environ.update({k: v for k, v in env().items() if k not in ("PYTHONPATH",)})
    import logging
    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="lora-repro-adversarial-")).resolve()
    results: list[Result] = []
    try:
        s = Scratch(root)
        for key in args.only.split(","):
            try:
                section = (SECTIONS[key](s) if key != "K" else faults_section(s, args.with_faults))
            except Exception as e:  # noqa: BLE001 - a broken harness section is reported, the rest goes on
                section = [Result(f"{key}*", "traceback", f"the section itself failed: {type(e).__name__}: {e}")]
            for r in section:
                detail = r.detail if len(r.detail) <= 400 else r.detail[:400] + " ..."
                print(f"{r.case:<7} {r.outcome:<10} {detail}", flush=True)
            results += section
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    ran = sum(counts.values())
    not_run = len(results) - ran
    print(f"adversarial: {ran} cases: " + ", ".join(f"{n} {o}" for o, n in counts.items())
          + f" ({not_run} not run; {time.perf_counter() - t0:.0f} s)")
    return 1 if any(counts[o] for o in BAD) else 0


if __name__ == "__main__":
    sys.exit(main())
