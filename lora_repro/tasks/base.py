"""What every task knows: where its data lives, its schema, how a model sees an example, its metric,
the synthetic rows of its offline fixture, the sizes the cost planner needs; and the registry of tasks by name.

A task is one small subclass in one module of this package, registered by name with `@register`
(`glue/rte`, `e2e`, `wikisql`, `samsum`, `gpt2/mnli`...); the package registers every module it holds,
so adding a task is that module plus its `conf/task/<name>.yaml`. The trainer never looks inside
examples itself: encoders get `text_pair` + `label`; decoder-only models get `prompt` + `target`
(loss on the target tokens only) and are evaluated on `eval_items` by generation.
"""
from __future__ import annotations

import glob
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from . import data_errors

if TYPE_CHECKING:
    import random

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class TaskConfigError(ValueError):
    """Unknown task, missing data file, or data that does not match the task's schema."""


@dataclass
class EvalItem:
    """One generation-evaluation unit: the prompt and every reference for it (E2E has several per MR)."""
    prompt: str
    references: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    name: ClassVar[str]
    hub_path: ClassVar[str]                   # load_dataset(hub_path, hub_name)
    hub_name: ClassVar[str | None] = None
    hub_revision: ClassVar[str | None] = None  # e.g. "refs/convert/parquet" for hub datasets that are loading scripts
    columns: ClassVar[tuple[str, ...]]        # the hub schema; local files must have these columns
    kind: ClassVar[str]                       # "classification" | "regression" | "generation"
    train_split: ClassVar[str] = "train"
    eval_splits: ClassVar[tuple[str, ...]] = ("validation",)  # the first is the main split (see merge_split_metrics)
    label_names: ClassVar[tuple[str, ...]] = ()
    main_metric: ClassVar[str]                # the paper's headline metric, a key of compute_metrics
    generation: ClassVar[dict[str, Any]] = {}  # num_beams, length_penalty, no_repeat_ngram_size, max_new_tokens
    nested_columns: ClassVar[tuple[str, ...]] = ()  # columns holding dicts/lists (a csv file cannot hold them)
    text_columns: ClassVar[tuple[str, ...]] = ()    # columns a model reads as text: every value must be a string
    # planning facts (`lora-repro plan`); None: the planner reports the task's cost as unknown
    train_examples: ClassVar[int | None] = None   # rows of the hub train split
    avg_tokens: ClassVar[int | None] = None       # estimated tokenised length of one example (+ target), not measured

    @property
    def num_labels(self) -> int:
        return 1 if self.kind == "regression" else len(self.label_names)

    # --- data -----------------------------------------------------------------------------------
    def load(self, data_dir: str | Path | None = None):
        """A `datasets.DatasetDict` with train + eval splits: from the hub, or from `data_dir`
        holding `<split>.{jsonl,json,csv,parquet}` files in the hub schema."""
        import datasets

        if data_dir is None:
            kwargs = {"revision": self.hub_revision} if self.hub_revision else {}
            return datasets.load_dataset(self.hub_path, self.hub_name, **kwargs)
        if not Path(data_dir).is_dir():
            raise TaskConfigError(f"{self.name}: data_dir {str(data_dir)!r} does not exist")
        files = self.split_files(data_dir)
        missing = [split for split, path in files.items() if path is None]
        if missing:
            raise TaskConfigError(
                f"{self.name}: no file for split {missing[0]!r} in {str(data_dir)!r}; expected {missing[0]}"
                f"{{{','.join(LOCAL_FORMATS)}}}")
        if ambiguous := self.ambiguous_files(data_dir):
            raise TaskConfigError(f"{self.name}: more than one file for a split in {str(data_dir)!r}: "
                                  f"{ambiguous}; keep one per split")
        files = {split: str(path) for split, path in files.items()}
        fmts = {LOCAL_FORMATS[Path(f).suffix] for f in files.values()}
        if len(fmts) != 1:
            raise TaskConfigError(f"{self.name}: mixed file formats in {str(data_dir)!r}: {sorted(fmts)}")
        fmt = fmts.pop()
        ds = datasets.DatasetDict()
        for split, file in files.items():      # one split at a time: a bad file is named, not a cast error
            if Path(file).stat().st_size == 0:
                raise TaskConfigError(f"{self.name}: {file} is empty")
            try:   # escaped: `datasets` expands glob characters, and `sst2[12]` must not read `sst21`
                ds[split] = datasets.load_dataset(fmt, data_files={split: glob.escape(file)}, split=split)
            except Exception as e:  # noqa: BLE001  (datasets raises many kinds; the file is what matters)
                raise TaskConfigError(f"{self.name}: cannot read {file} as {fmt}: "
                                      f"{data_errors.parse_error(file, fmt, e)}") from e
            missing = [c for c in self.columns if c not in ds[split].column_names]
            if missing:
                raise TaskConfigError(f"{self.name}: {file} lacks column(s) {missing}; "
                                      f"the schema is {list(self.columns)}")
            if ds[split].num_rows == 0:
                raise TaskConfigError(f"{self.name}: {file} has no rows")
            if bad := self.check_rows(ds[split], file):
                raise TaskConfigError(f"{self.name}: " + "; ".join(bad))
        return ds

    def check_rows(self, split, file: str) -> list[str]:
        """What is wrong with the rows of one loaded local split, each naming the file, the line or row and the
        value: here, a `text_columns` value that is not a string (a task with labels adds their domain)."""
        problems = []
        for col in self.text_columns:
            values = data_errors.column(split, col, file)
            if isinstance(values, str):
                problems.append(values)
                continue
            problems += data_errors.listed(file, f"{col!r} is not text",
                                           [(i, v) for i, v in enumerate(values) if not isinstance(v, str)])
        return problems

    def ambiguous_files(self, data_dir: str | Path) -> list[str]:
        """Splits with more than one file (`train.csv` and `train.jsonl`): which one is meant is a guess."""
        data_dir = Path(data_dir)
        out = []
        for split in (self.train_split, *self.eval_splits):
            found = [p.name for p in sorted(data_dir.glob(f"{split}.*")) if p.suffix in LOCAL_FORMATS]
            if len(found) > 1:
                out.append(" and ".join(found))
        return out

    def split_files(self, data_dir: str | Path) -> dict[str, Path | None]:
        """The file of each split (train first) in a `data_dir` of `<split>.{jsonl,json,csv,parquet}` files,
        None for a split without one: the one reader of that layout (loading, validation, planning)."""
        data_dir = Path(data_dir)
        out: dict[str, Path | None] = {}
        for split in (self.train_split, *self.eval_splits):
            found = [p for p in sorted(data_dir.glob(f"{split}.*")) if p.suffix in LOCAL_FORMATS] \
                if data_dir.is_dir() else []
            out[split] = found[0] if found else None
        return out

    def check_data_dir(self, data_dir: str | Path | None, problems) -> None:
        """Append to `problems` (a `checks.Problems`) what is wrong with `task.data_dir` (None: the hub)."""
        if data_dir is None:
            return
        splits = (self.train_split, *self.eval_splits)
        allowed = (f"an existing directory with {'/'.join(splits)} files in the hub schema "
                   "(or null to download from the hub)")
        if problems.check(Path(data_dir).is_dir(), "task.data_dir", data_dir, allowed):
            missing = [s for s, path in self.split_files(data_dir).items() if path is None]
            exts = ",".join(LOCAL_FORMATS)
            if problems.check(not missing, "task.data_dir", data_dir,
                              "a directory holding a file per split; missing: "
                              + ", ".join(f"{m}{{{exts}}}" for m in missing)):
                try:        # the contents too (labels, texts), so bad data stops the run before a model loads
                    data_errors.load_checked(self, data_dir)
                except TaskConfigError as e:
                    problems.append(f"task.data_dir={str(data_dir)!r}: {e}")

    def fixture_rows(self, split: str, n: int, rng: random.Random) -> list[dict]:
        """`n` synthetic rows of `split` in the hub schema, drawn from `rng` alone (`fixtures.write_fixture`
        seeds it per task and split). A task that does not override this has no offline fixture."""
        raise NotImplementedError(f"{self.name} has no fixture_rows")

    @classmethod
    def has_fixture(cls) -> bool:
        return cls.fixture_rows is not Task.fixture_rows

    @property
    def main_split(self) -> str:
        return self.eval_splits[0]

    def merge_split_metrics(self, per_split: dict[str, dict[str, float]]) -> dict[str, float]:
        """One flat metrics dict for a run: the main split's keys as they are (so `main_metric` is
        found), every other split's keys as `<split>/<key>` (MNLI: `validation_mismatched/accuracy`)."""
        merged = dict(per_split.get(self.main_split, {}))
        for split, metrics in per_split.items():
            if split != self.main_split:
                merged.update({f"{split}/{k}": v for k, v in metrics.items()})
        return merged

    # --- encoders (classification / regression head) --------------------------------------------
    def text_pair(self, example: dict) -> tuple[str, str | None]:
        raise NotImplementedError(f"{self.name} has no encoder format")

    def label(self, example: dict) -> int | float:
        raise NotImplementedError(f"{self.name} has no label")

    # --- decoder-only models (prompt -> target) -------------------------------------------------
    @abstractmethod
    def prompt(self, example: dict) -> str: ...

    @abstractmethod
    def target(self, example: dict) -> str: ...

    def eval_items(self, split) -> list[EvalItem]:
        """Generation evaluation units of a split (default: one per example)."""
        return [EvalItem(self.prompt(ex), [self.target(ex)]) for ex in split]

    # --- scoring --------------------------------------------------------------------------------
    @abstractmethod
    def compute_metrics(self, predictions: list, references: list) -> dict[str, float]:
        """Metrics of predictions against references; contains `main_metric`.
        Classification/regression: predictions and references are labels (ints/floats).
        Generation: predictions are strings, references are lists of strings (EvalItem.references)."""


TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make `cls` selectable as `task.name=<cls.name>`."""
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise TaskConfigError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]()
