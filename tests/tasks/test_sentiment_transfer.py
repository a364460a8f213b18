"""demo/sentiment: its held-out split can only be scored by a body that already knows the words (no held-out
word occurs in training), labels are balanced, "not" flips the label, and the task names its fixture when no
data_dir is given (it has no hub dataset)."""
import json
import re

import pytest

from lora_repro.checks import Problems
from lora_repro.tasks import TaskConfigError, get_task
from lora_repro.tasks.fixtures import write_fixture
from lora_repro.tasks.sentiment_transfer import HELDOUT_WORDS, NEGATION, TRAIN_WORDS

TASK = "demo/sentiment"


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _words(rows):
    return {w for r in rows for w in re.findall(r"[a-z]+", r["sentence"])}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("sentiment")
    write_fixture(TASK, d, n_train=256, n_eval=128)
    return {split: _rows(d / f"{split}.jsonl") for split in ("train", "heldout", "seen")}


def test_no_heldout_sentiment_word_occurs_in_training(data):
    train_words = _words(data["train"])
    heldout = {w for ws in HELDOUT_WORDS for w in ws}
    assert not heldout & train_words
    assert heldout & _words(data["heldout"]) == heldout      # every synonym is asked about
    assert not {w for ws in TRAIN_WORDS for w in ws} & _words(data["heldout"])


@pytest.mark.parametrize("split", ["train", "heldout", "seen"])
def test_labels_are_balanced_and_follow_the_word_and_its_negation(data, split):
    rows = data[split]
    assert sum(r["label"] for r in rows) == len(rows) // 2
    words = HELDOUT_WORDS if split == "heldout" else TRAIN_WORDS
    negated = 0
    for r in rows:
        (polarity,) = [p for p in (0, 1) if set(re.findall(r"[a-z]+", r["sentence"])) & set(words[p])]
        flipped = f" {NEGATION}" in r["sentence"]
        negated += flipped
        assert r["label"] == (1 - polarity if flipped else polarity), r
    assert 0 < negated < len(rows) / 2


def test_the_task_has_no_hub_dataset_and_says_how_to_get_its_data(tmp_path):
    task = get_task(TASK)
    with pytest.raises(TaskConfigError, match="lora-repro fixture demo/sentiment"):
        task.load(None)
    problems = Problems()
    task.check_data_dir(None, problems)
    assert len(problems) == 1 and "task.data_dir=None" in problems[0] and "lora-repro fixture" in problems[0]
    write_fixture(TASK, tmp_path, n_train=8, n_eval=4)
    problems = Problems()
    task.check_data_dir(tmp_path, problems)
    assert not problems
    ds = task.load(tmp_path)
    assert {s: len(ds[s]) for s in ds} == {"train": 8, "heldout": 4, "seen": 4}
