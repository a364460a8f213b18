"""SAMSum dialogue summarisation (Table 4), GPT-3 setup of App C.

Hub `knkarthick/samsum` (CSV; `id`, `dialogue`, `summary`; train 14,732 / validation 818 /
test 819). `Samsung/samsum` is a loading script recent `datasets` cannot run. App C's 819
examples are the test split, so `test` is the eval split.

- prompt = the dialogue's utterances joined with "\\n", followed by "\\n\\n" (App C); the hub's
  "\\r\\n" line breaks become "\\n". target = the summary.
- metrics: ROUGE-1/2/L F ×100 with stemming (`rouge-score`); main = rouge1, the first of the
  R1/R2/RL columns of Table 4 (all three are logged).
"""
from __future__ import annotations

from ..metrics.rouge import rouge
from .base import Task, register


@register
class SAMSum(Task):
    name = "samsum"
    hub_path = "knkarthick/samsum"
    columns = ("id", "dialogue", "summary")
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
