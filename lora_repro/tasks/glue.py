"""The eight GLUE tasks of Table 2 (hub `nyu-mll/glue`), scored on the dev sets like the paper.

Encoders see `text_pair` (the hub's two text columns, or one) and predict `label` with a head.
Decoder-only models can run any GLUE task through a generic verbalizer (`prompt` + `target`); the prompt
has one `<column>: <text>` line per hub text column:

| task      | prompt (`\\n` between lines)               | target (leading space)           | metrics (main first) |
|-----------|--------------------------------------------|----------------------------------|----------------------|
| glue/mnli | `premise: P` / `hypothesis: H` / `label:`  | entailment/neutral/contradiction | accuracy (matched)   |
| glue/sst2 | `sentence: S` / `label:`                   | negative/positive                | accuracy             |
| glue/mrpc | `sentence1: A` / `sentence2: B` / `label:` | not_equivalent/equivalent        | accuracy, f1         |
| glue/cola | `sentence: S` / `label:`                   | unacceptable/acceptable          | matthews             |
| glue/qnli | `question: Q` / `sentence: S` / `label:`   | entailment/not_entailment        | accuracy             |
| glue/qqp  | `question1: A` / `question2: B` / `label:` | not_duplicate/duplicate          | accuracy, f1         |
| glue/rte  | `sentence1: A` / `sentence2: B` / `label:` | entailment/not_entailment        | accuracy             |
| glue/stsb | `sentence1: A` / `sentence2: B` / `score:` | the score, one decimal (`3.8`)   | pearson, spearman    |

Main metrics follow the Table 2 caption: MNLI accuracy (the matched one; see SOURCES discrepancy
10; the mismatched one is logged as `validation_mismatched/accuracy`), CoLA Matthews correlation,
STS-B Pearson, accuracy elsewhere. All ×100.

Fixture rows are learnable from the text: the last text column contains one keyword per class
(`LABEL_WORDS`; STS-B: one per integer score 0..5, `SCORE_WORDS`) among filler words that carry no
signal. A randomly initialised tiny model learns them, but only after it leaves the loss plateau at chance
(~60 steps of the tiny trainer on SST-2's fixture); the 16 steps of `make demo-tiny` do not get there.
"""
from __future__ import annotations

import random
import re
from typing import ClassVar

from ..metrics import classification as C
from . import data_errors
from .base import Task, register

_FIRST_WORD = re.compile(r"\S+")
_NUMBER = re.compile(r"[-+]?\d*\.?\d+")
LABEL_WORDS = ("red", "blue", "green")
SCORE_WORDS = ("zero", "one", "two", "three", "four", "five")
FILLER = ("the", "a", "cat", "dog", "house", "river", "quickly", "runs", "sees", "big", "small", "over",
          "under", "near", "old", "new", "bird", "tree", "car", "walks", "happy", "city", "hill", "book")


class GlueTask(Task):
    hub_path = "nyu-mll/glue"
    kind = "classification"
    text_columns: ClassVar[tuple[str, ...]]
    metrics: ClassVar[tuple[str, ...]] = ("accuracy",)   # what compute_metrics returns; main_metric first
    main_metric = "accuracy"
    prompt_suffix: ClassVar[str] = "label:"

    # encoders
    def text_pair(self, example: dict) -> tuple[str, str | None]:
        a = example[self.text_columns[0]]
        return a, (example[self.text_columns[1]] if len(self.text_columns) > 1 else None)

    def label(self, example: dict) -> int | float:
        return float(example["label"]) if self.kind == "regression" else int(example["label"])

    SCORE_RANGE: ClassVar[tuple[float, float]] = (0.0, 5.0)   # STS-B similarity scores

    def check_rows(self, split, file: str) -> list[str]:
        """Every text a string, every label in the task's domain: an index into `label_names` (an integer,
        or a float with no fraction), or for STS-B a finite score in [0, 5]. GLUE test files carry label -1
        (no label): they cannot be trained or scored on."""
        problems = super().check_rows(split, file)
        labels = data_errors.column(split, "label", file)
        if isinstance(labels, str):
            return [*problems, labels]
        real = data_errors.is_real
        if self.kind == "regression":
            lo, hi = self.SCORE_RANGE
            bad = [(i, v) for i, v in enumerate(labels) if not (real(v) and lo <= v <= hi)]
            return problems + data_errors.listed(file, f"'label' must be a finite score in [{lo:g}, {hi:g}]", bad)
        n = len(self.label_names)
        bad = [(i, v) for i, v in enumerate(labels) if not (real(v) and v == int(v) and 0 <= v < n)]
        valid = ", ".join(f"{i} ({name})" for i, name in enumerate(self.label_names))
        return problems + data_errors.listed(file, f"'label' must be one of {valid}", bad)

    # decoders
    def prompt(self, example: dict) -> str:
        lines = [f"{c}: {example[c]}" for c in self.text_columns]
        return "\n".join([*lines, self.prompt_suffix])

    def target(self, example: dict) -> str:
        return " " + self.verbalize(self.label(example))

    def verbalize(self, label: int | float) -> str:
        return f"{label:.1f}" if self.kind == "regression" else self.label_names[int(label)]

    def parse_generation(self, text: str) -> int | float:
        """The label a generated continuation names: its first word (a label name), or for
        regression its first number; -1 / nan when there is none."""
        if self.kind == "regression":
            m = _NUMBER.search(text)
            return float(m.group()) if m else float("nan")
        m = _FIRST_WORD.search(text.strip().lower())
        word = m.group().strip(".,;:!?\"'") if m else ""
        return self.label_names.index(word) if word in self.label_names else -1

    def _as_labels(self, values: list) -> list:
        out = []
        for v in values:
            if isinstance(v, (list, tuple)):   # generation references: [target string]
                v = v[0]
            out.append(self.parse_generation(v) if isinstance(v, str) else v)
        return out

    def compute_metrics(self, predictions: list, references: list) -> dict[str, float]:
        """Labels (ints/floats) from a head, or generated strings / reference lists from a decoder."""
        preds, refs = self._as_labels(predictions), self._as_labels(references)
        if self.kind == "regression":
            preds = [0.0 if p != p else p for p in preds]   # an unparseable generation scores as 0
        fns = {"accuracy": C.accuracy, "f1": C.f1, "matthews": C.matthews_corr, "pearson": C.pearson,
               "spearman": C.spearman}
        return {m: fns[m](preds, refs) for m in self.metrics}

    def fixture_rows(self, split: str, n: int, rng: random.Random) -> list[dict]:
        """Filler sentences; the last text column holds the label's keyword (see the module docstring)."""
        words = SCORE_WORDS if self.kind == "regression" else LABEL_WORDS[:len(self.label_names)]
        labels = [i % len(words) for i in range(n)]
        rng.shuffle(labels)
        rows = []
        for idx, lab in enumerate(labels):
            row = {}
            for j, col in enumerate(self.text_columns):
                toks = [rng.choice(FILLER) for _ in range(rng.randint(4, 8))]
                if j == len(self.text_columns) - 1:
                    toks.insert(rng.randint(0, len(toks)), words[lab])
                row[col] = " ".join(toks) + "."
            row["label"] = float(lab) if self.kind == "regression" else lab
            row["idx"] = idx
            rows.append(row)
        return rows


@register
class MNLI(GlueTask):
    name = "glue/mnli"
    train_examples = 392_702
    avg_tokens = 40
    hub_name = "mnli"
    columns = ("premise", "hypothesis", "label", "idx")
    text_columns = ("premise", "hypothesis")
    label_names = ("entailment", "neutral", "contradiction")
    eval_splits = ("validation_matched", "validation_mismatched")


@register
class SST2(GlueTask):
    name = "glue/sst2"
    train_examples = 67_349
    avg_tokens = 13
    hub_name = "sst2"
    columns = ("sentence", "label", "idx")
    text_columns = ("sentence",)
    label_names = ("negative", "positive")


@register
class MRPC(GlueTask):
    name = "glue/mrpc"
    train_examples = 3_668
    avg_tokens = 53
    hub_name = "mrpc"
    columns = ("sentence1", "sentence2", "label", "idx")
    text_columns = ("sentence1", "sentence2")
    label_names = ("not_equivalent", "equivalent")
    metrics = ("accuracy", "f1")


@register
class CoLA(GlueTask):
    name = "glue/cola"
    train_examples = 8_551
    avg_tokens = 11
    hub_name = "cola"
    columns = ("sentence", "label", "idx")
    text_columns = ("sentence",)
    label_names = ("unacceptable", "acceptable")
    metrics = ("matthews",)
    main_metric = "matthews"


@register
class QNLI(GlueTask):
    name = "glue/qnli"
    train_examples = 104_743
    avg_tokens = 50
    hub_name = "qnli"
    columns = ("question", "sentence", "label", "idx")
    text_columns = ("question", "sentence")
    label_names = ("entailment", "not_entailment")


@register
class QQP(GlueTask):
    name = "glue/qqp"
    train_examples = 363_846
    avg_tokens = 30
    hub_name = "qqp"
    columns = ("question1", "question2", "label", "idx")
    text_columns = ("question1", "question2")
    label_names = ("not_duplicate", "duplicate")
    metrics = ("accuracy", "f1")


@register
class RTE(GlueTask):
    name = "glue/rte"
    train_examples = 2_490
    avg_tokens = 70
    hub_name = "rte"
    columns = ("sentence1", "sentence2", "label", "idx")
    text_columns = ("sentence1", "sentence2")
    label_names = ("entailment", "not_entailment")


@register
class STSB(GlueTask):
    name = "glue/stsb"
    train_examples = 5_749
    avg_tokens = 31
    hub_name = "stsb"
    kind = "regression"
    columns = ("sentence1", "sentence2", "label", "idx")
    text_columns = ("sentence1", "sentence2")
    metrics = ("pearson", "spearman")
    main_metric = "pearson"
    prompt_suffix = "score:"


@register
class GPT2MNLI(MNLI):
    """MNLI as a generation task for GPT-2 / GPT-3-style decoders (Table 4's MNLI-m column).

    The paper gives no format; ours is the GLUE verbalizer: `premise: P\\nhypothesis: H\\nlabel:`
    -> ` entailment` / ` neutral` / ` contradiction`. Accuracy = the first generated word is the
    gold label word (greedy decoding, a few tokens suffice)."""
    name = "gpt2/mnli"
    train_examples = 392_702
    avg_tokens = 50
    kind = "generation"
    generation = {"num_beams": 1, "max_new_tokens": 4}
