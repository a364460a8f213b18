"""Two tiny, learnable tasks for the trainer's tests (the real GLUE/E2E tasks live in lora_repro/tasks):
`toy/sentiment` (sentence -> 0/1 by its polarity word) and `toy/describe` (a meaning representation ->
a sentence that copies its slots), with writers of their data files in the hub-like schema.

Tests make a task visible through `registered(*task_classes)` (a context manager; `toy_registered` is the
pytest fixture for these two), which removes it again afterwards, so no test sees a task because of the
order in which modules were collected."""
from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from lora_repro.tasks import TASKS, Task, register

POS = ["good", "great", "fine", "lovely", "nice"]
NEG = ["bad", "awful", "poor", "terrible", "sad"]
NOUNS = ["movie", "meal", "book", "song", "game", "room", "trip", "show"]
NAMES = ["alpha", "bravo", "delta", "echo", "golf", "hotel"]
FOODS = ["pizza", "sushi", "pasta", "curry", "salad"]


class ToySentiment(Task):
    name = "toy/sentiment"
    hub_path = "toy"
    columns = ("sentence", "label")
    kind = "classification"
    label_names = ("negative", "positive")
    main_metric = "accuracy"

    def text_pair(self, ex):
        return ex["sentence"], None

    def label(self, ex):
        return int(ex["label"])

    def prompt(self, ex):
        return f"review : {ex['sentence']} sentiment :"

    def target(self, ex):
        return self.label_names[int(ex["label"])]

    def compute_metrics(self, predictions, references):
        return {"accuracy": sum(int(p == r) for p, r in zip(predictions, references)) / len(references)}


class ToyDescribe(Task):
    name = "toy/describe"
    hub_path = "toy"
    columns = ("meaning_representation", "human_reference")
    kind = "generation"
    main_metric = "exact"
    generation = {"num_beams": 2, "length_penalty": 1.0, "no_repeat_ngram_size": 0, "max_new_tokens": 8}

    def prompt(self, ex):
        return ex["meaning_representation"] + " ||"

    def target(self, ex):
        return ex["human_reference"]

    def compute_metrics(self, predictions, references):
        exact = sum(int(p.strip() in r) for p, r in zip(predictions, references)) / len(references)
        return {"exact": exact, "pred_len": sum(len(p.split()) for p in predictions) / len(predictions)}


FRUIT = ("apple", "pear", "plum", "fig", "kiwi")


class ToyCount(Task):
    """How many fruit words a sentence holds, as a label: `two` for `apple plum`."""
    name = "toy/count"
    hub_path = "toy/count"
    columns = ("text", "label")
    kind = "classification"
    label_names = ("one", "two", "three")
    eval_splits = ("validation", "test")
    main_metric = "accuracy"
    train_examples = 1_000
    avg_tokens = 12

    def text_pair(self, ex):
        return ex["text"], None

    def label(self, ex):
        return int(ex["label"])

    def prompt(self, ex):
        return f"fruit: {ex['text']}\ncount:"

    def target(self, ex):
        return " " + self.label_names[int(ex["label"])]

    def compute_metrics(self, predictions, references):
        return {"accuracy": 100.0 * sum(p == r for p, r in zip(predictions, references)) / len(references)}

    def fixture_rows(self, split, n, rng):
        rows = []
        for _ in range(n):
            k = rng.randrange(3)
            rows.append({"text": " ".join(rng.choice(FRUIT) for _ in range(k + 1)), "label": k})
        return rows


@contextlib.contextmanager
def registered(*task_classes: type[Task]) -> Iterator[None]:
    """Register `task_classes` in `lora_repro.tasks.TASKS` for the block, then put TASKS back as it was."""
    before = {cls.name: TASKS.get(cls.name) for cls in task_classes}
    for cls in task_classes:
        register(cls)
    try:
        yield
    finally:
        for name, old in before.items():
            if old is None:
                TASKS.pop(name, None)
            else:
                TASKS[name] = old


@pytest.fixture
def toy_registered():
    """`toy/sentiment` and `toy/describe` registered for one test (`pytestmark = pytest.mark.usefixtures(...)`)."""
    with registered(ToySentiment, ToyDescribe):
        yield


def _write(directory: Path, split: str, rows: list[dict]) -> None:
    with open(directory / f"{split}.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def write_sentiment(directory, n_train=64, n_eval=32, seed=0) -> Path:
    rng, directory = random.Random(seed), Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def row():
        label = rng.randrange(2)
        return {"sentence": f"the {rng.choice(NOUNS)} was {rng.choice(POS if label else NEG)}", "label": label}
    _write(directory, "train", [row() for _ in range(n_train)])
    _write(directory, "validation", [row() for _ in range(n_eval)])
    return directory


def write_describe(directory, n_train=48, n_eval=8, seed=0) -> Path:
    rng, directory = random.Random(seed), Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def row():
        name, food = rng.choice(NAMES), rng.choice(FOODS)
        return {"meaning_representation": f"name [{name}], food [{food}]", "human_reference": f"{name} serves {food}"}
    _write(directory, "train", [row() for _ in range(n_train)])
    _write(directory, "validation", [row() for _ in range(n_eval)])
    return directory
