"""Small deterministic synthetic data in each task's exact hub schema.

For tests, the offline demo, and air-gapped users who want to see the format `Task.load(data_dir)`
expects: `write_fixture("glue/rte", "data/rte")` writes `train.jsonl` + one file per eval split.

Classification labels are learnable from the text: the last text column contains one keyword
per class (`LABEL_WORDS`; STS-B: one per integer score 0..5) among filler words that carry no
signal, so a tiny model learns the task in a few steps. Generation fixtures are template-made
and equally regular (the E2E reference spells out the MR's slots, WikiSQL's question names the
selected column, aggregation and condition values).
"""
from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

from .base import TASKS, Task, TaskConfigError, get_task
from .e2e import E2E
from .glue import GlueTask
from .samsum import SAMSum
from .wikisql import WikiSQL
from ..metrics.wikisql import AGG_OPS, Query

FORMATS = ("jsonl", "csv", "parquet")
LABEL_WORDS = ("red", "blue", "green")
SCORE_WORDS = ("zero", "one", "two", "three", "four", "five")
FILLER = ("the", "a", "cat", "dog", "house", "river", "quickly", "runs", "sees", "big", "small", "over",
          "under", "near", "old", "new", "bird", "tree", "car", "walks", "happy", "city", "hill", "book")


def fixture_tasks() -> list[str]:
    """Every registered task name (each has a fixture)."""
    return sorted(TASKS)


def _rng(seed: int, task: str, split: str) -> random.Random:
    return random.Random(zlib.crc32(f"{seed}/{task}/{split}".encode()))


def _filler(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(FILLER) for _ in range(n)]


def _glue_rows(task: GlueTask, rng: random.Random, n: int) -> list[dict]:
    words = SCORE_WORDS if task.kind == "regression" else LABEL_WORDS[:len(task.label_names)]
    labels = [i % len(words) for i in range(n)]
    rng.shuffle(labels)
    rows = []
    for idx, lab in enumerate(labels):
        row = {}
        for j, col in enumerate(task.text_columns):
            toks = _filler(rng, rng.randint(4, 8))
            if j == len(task.text_columns) - 1:
                toks.insert(rng.randint(0, len(toks)), words[lab])
            row[col] = " ".join(toks) + "."
        row["label"] = float(lab) if task.kind == "regression" else lab
        row["idx"] = idx
        rows.append(row)
    return rows


_NAMES = ("The Vaults", "Blue Spice", "The Eagle", "Zizzi", "Aromi", "The Mill", "Cotto", "Giraffe")
_EAT = ("pub", "coffee shop", "restaurant")
_FOOD = ("Italian", "French", "Indian", "Chinese", "English")
_AREA = ("city centre", "riverside")


def _e2e_rows(rng: random.Random, n: int, refs_per_mr: int) -> list[dict]:
    rows = []
    while len(rows) < n:
        name, eat, food, area = rng.choice(_NAMES), rng.choice(_EAT), rng.choice(_FOOD), rng.choice(_AREA)
        mr = f"name[{name}], eatType[{eat}], food[{food}], area[{area}]"
        refs = [f"{name} is a {eat} serving {food} food in the {area}.",
                f"In the {area} there is a {food} {eat} called {name}.",
                f"{name} is a {food} {eat} located in the {area}."]
        for ref in refs[:refs_per_mr]:
            rows.append({"meaning_representation": mr, "human_reference": ref})
    return rows[:n]


_HEADER = ["Player", "Team", "Year", "Points"]
_TYPES = ["text", "text", "real", "real"]
_PLAYERS = ("Ann Lee", "Bo Chan", "Cy Dorn", "Di Ek", "Ed Fox", "Flo Gray")
_TEAMS = ("Boston", "Denver", "Miami")


def _wikisql_rows(rng: random.Random, n: int, phase: int) -> list[dict]:
    rows = []
    for i in range(n):
        players = rng.sample(_PLAYERS, 4)
        table_rows = [[p, rng.choice(_TEAMS), str(rng.randint(1990, 2010)), str(rng.randint(0, 40))]
                      for p in players]
        tid = f"1-{1000 + i}-{phase}"
        table = {"header": _HEADER, "page_title": "Season statistics", "page_id": str(5000 + i), "types": _TYPES,
                 "id": tid, "section_title": "Players", "caption": "Players", "rows": table_rows,
                 "name": f"table_{tid.replace('-', '_')}"}
        kind = rng.randrange(3)
        if kind == 0:      # SELECT Team FROM table WHERE Player = x
            q = Query(1, 0, ((0, 0, table_rows[rng.randrange(4)][0]),))
            question = f"Which team does {q.conds[0][2]} play for?"
        elif kind == 1:    # SELECT COUNT Player FROM table WHERE Team = x
            q = Query(0, 3, ((1, 0, rng.choice(_TEAMS)),))
            question = f"How many players play for {q.conds[0][2]}?"
        else:              # SELECT MAX Points FROM table WHERE Team = x AND Year > y
            q = Query(3, 1, ((1, 0, rng.choice(_TEAMS)), (2, 1, str(rng.randint(1990, 2005)))))
            question = f"What is the most points for {q.conds[0][2]} after {q.conds[1][2]}?"
        sql = {"human_readable": q.human_readable(_HEADER), "sel": q.sel, "agg": q.agg,
               "conds": {"column_index": [c for c, _, _ in q.conds], "operator_index": [o for _, o, _ in q.conds],
                         "condition": [v for _, _, v in q.conds]}}
        assert AGG_OPS[q.agg] in ("", "COUNT", "MAX")
        rows.append({"phase": phase, "question": question, "table": table, "sql": sql})
    return rows


_PEOPLE = ("Anna", "Tom", "Lena", "Mark", "Jo", "Sam")
_TOPICS = ("the party", "the exam", "dinner", "the trip", "the movie", "work")


def _samsum_rows(rng: random.Random, n: int, split: str) -> list[dict]:
    rows = []
    for i in range(n):
        a, b = rng.sample(_PEOPLE, 2)
        topic = rng.choice(_TOPICS)
        dialogue = "\r\n".join([f"{a}: Hi {b}! Are you coming to {topic}?", f"{b}: Yes, I will be there.",
                                f"{a}: Great, see you at {topic}."])
        rows.append({"id": f"{split}-{i:05d}", "dialogue": dialogue, "summary": f"{b} is coming to {topic} with {a}."})
    return rows


def fixture_rows(task: Task, split: str, n: int, seed: int = 0) -> list[dict]:
    rng = _rng(seed, task.name, split)
    if isinstance(task, GlueTask):
        return _glue_rows(task, rng, n)
    if isinstance(task, E2E):
        return _e2e_rows(rng, n, refs_per_mr=1 if split == task.train_split else 3)
    if isinstance(task, WikiSQL):
        return _wikisql_rows(rng, n, phase=1 if split == task.train_split else 2)
    if isinstance(task, SAMSum):
        return _samsum_rows(rng, n, split)
    raise TaskConfigError(f"no fixture for task {task.name!r}; tasks with fixtures: {', '.join(fixture_tasks())}")


def write_fixture(task_name: str, directory: str | Path, n_train: int = 64, n_eval: int = 32, seed: int = 0,
                  fmt: str = "jsonl") -> dict[str, Path]:
    """Write `<split>.<fmt>` for the train split and every eval split; returns {split: path}.
    Counts are rows: E2E eval rows come three references per MR, its train rows one per MR."""
    task = get_task(task_name)
    if fmt not in FORMATS:
        raise TaskConfigError(f"fixture format {fmt!r} is not one of {list(FORMATS)}")
    if fmt == "csv" and isinstance(task, WikiSQL):
        raise TaskConfigError("wikisql has nested columns (table, sql) that csv cannot hold; use jsonl or parquet")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in (task.train_split, *task.eval_splits):
        rows = fixture_rows(task, split, n_train if split == task.train_split else n_eval, seed)
        path = directory / f"{split}.{fmt}"
        if fmt == "jsonl":
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        else:
            import pandas as pd
            df = pd.DataFrame(rows)
            df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path, index=False)
        paths[split] = path
    return paths


def main(argv: list[str] | None = None) -> int:
    """`lora-repro fixture TASK DIR`: write a fixture data directory (or `--list` the task names)."""
    import argparse

    p = argparse.ArgumentParser(prog="lora-repro fixture", description=main.__doc__)
    p.add_argument("task", nargs="?", help="task name, e.g. glue/rte")
    p.add_argument("directory", nargs="?")
    p.add_argument("--n-train", type=int, default=64)
    p.add_argument("--n-eval", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fmt", choices=FORMATS, default="jsonl")
    p.add_argument("--list", action="store_true", help="print every task name and exit")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(fixture_tasks()))
        return 0
    if not (args.task and args.directory):
        p.error("TASK and DIRECTORY are required (or --list)")
    for split, path in write_fixture(args.task, args.directory, args.n_train, args.n_eval, args.seed,
                                     args.fmt).items():
        print(f"{split}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
