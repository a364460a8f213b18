"""SAMSum dialogue summarisation (Table 4), GPT-3 setup of App C.

Hub `knkarthick/samsum` (CSV; `id`, `dialogue`, `summary`; train 14,732 / validation 818 /
test 819). `Samsung/samsum` is a loading script recent `datasets` cannot run. App C's 819
examples are the test split, so `test` is the eval split.

- prompt = the dialogue's utterances joined with "\\n", followed by "\\n\\n" (App C); the hub's
  "\\r\\n" line breaks become "\\n". target = the summary.
- metrics: ROUGE-1/2/L F ×100 with stemming (`rouge-score`); main = rouge1, the first of the
  R1/R2/RL columns of Table 4 (all three are logged).
- fixture rows: three-line dialogues whose summary names who comes to what.
"""
from __future__ import annotations

import random

from ..metrics.rouge import rouge
from .base import Task, register

_PEOPLE = ("Anna", "Tom", "Lena", "Mark", "Jo", "Sam")
_TOPICS = ("the party", "the exam", "dinner", "the trip", "the movie", "work")


@register
class SAMSum(Task):
    name = "samsum"
    train_examples = 14_732
    avg_tokens = 160
    hub_path = "knkarthick/samsum"
    columns = ("id", "dialogue", "summary")
    text_columns = ("dialogue", "summary")
    kind = "generation"
    eval_splits = ("test",)
    main_metric = "rouge1"
    generation = {"num_beams": 1, "max_new_tokens": 128}  # not in the paper: greedy, summaries are short

    def prompt(self, example: dict) -> str:
        lines = [line.strip() for line in str(example["dialogue"]).splitlines() if line.strip()]
        return "\n".join(lines) + "\n\n"

    def target(self, example: dict) -> str:
        return str(example["summary"])

    def compute_metrics(self, predictions: list, references: list) -> dict[str, float]:
        return rouge([p.strip() for p in predictions], references)

    def fixture_rows(self, split: str, n: int, rng: random.Random) -> list[dict]:
        rows = []
        for i in range(n):
            a, b = rng.sample(_PEOPLE, 2)
            topic = rng.choice(_TOPICS)
            dialogue = "\r\n".join([f"{a}: Hi {b}! Are you coming to {topic}?", f"{b}: Yes, I will be there.",
                                    f"{a}: Great, see you at {topic}."])
            rows.append({"id": f"{split}-{i:05d}", "dialogue": dialogue,
                         "summary": f"{b} is coming to {topic} with {a}."})
        return rows
