"""Small deterministic synthetic data in each task's exact hub schema.

For tests, the offline demo, and air-gapped users who want to see the format `Task.load(data_dir)`
expects: `write_fixture("glue/rte", "data/rte")` writes `train.jsonl` + one file per eval split.

The rows come from the task itself (`Task.fixture_rows(split, n, rng)`, next to its schema); this
module seeds one rng per (seed, task, split), writes the files and is the `lora-repro fixture` CLI.
Each family's rows are learnable and regular: GLUE's last text column holds one keyword per class,
generation fixtures are template-made (see each task module). `demo/sentiment` is the one fixture built so that
only a pretrained body scores (its eval words never occur in training; `make demo`).
"""
from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

from .base import TASKS, Task, TaskConfigError, get_task

FORMATS = ("jsonl", "csv", "parquet")


def fixture_tasks() -> list[str]:
    """The registered tasks that can write offline data (their class overrides `Task.fixture_rows`)."""
    return sorted(name for name, cls in TASKS.items() if cls.has_fixture())


def _rng(seed: int, task: str, split: str) -> random.Random:
    return random.Random(zlib.crc32(f"{seed}/{task}/{split}".encode()))


def _require_fixture(task: Task) -> None:
    if not task.has_fixture():
        raise TaskConfigError(f"no fixture for task {task.name!r} (its class has no fixture_rows); "
                              f"tasks with fixtures: {', '.join(fixture_tasks())}")


def fixture_rows(task: Task, split: str, n: int, seed: int = 0) -> list[dict]:
    """`n` rows of `split`, the same for the same (seed, task, split)."""
    _require_fixture(task)
    return task.fixture_rows(split, n, _rng(seed, task.name, split))


def write_fixture(task_name: str, directory: str | Path, n_train: int = 64, n_eval: int = 32, seed: int = 0,
                  fmt: str = "jsonl") -> dict[str, Path]:
    """Write `<split>.<fmt>` for the train split and every eval split; returns {split: path}.
    Counts are rows: E2E eval rows come three references per MR, its train rows one per MR."""
    task = get_task(task_name)
    _require_fixture(task)
    if fmt not in FORMATS:
        raise TaskConfigError(f"fixture format {fmt!r} is not one of {list(FORMATS)}")
    if fmt == "csv" and task.nested_columns:
        raise TaskConfigError(f"{task.name} has nested columns ({', '.join(task.nested_columns)}) that csv cannot "
                              "hold; use jsonl or parquet")
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
    p.add_argument("--list", action="store_true", help="print every task with a fixture and exit")
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
