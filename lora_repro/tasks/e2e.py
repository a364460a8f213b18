"""E2E NLG challenge (Table 3): meaning representation -> restaurant description, GPT-2.

Hub `tuetschek/e2e_nlg` is a loading script, which recent `datasets` no longer runs; its parquet
conversion (`revision="refs/convert/parquet"`) has the same schema: `meaning_representation`,
`human_reference`, one row per (MR, reference), splits train/validation/test.

- prompt = the MR as the hub writes it (`name[The Vaults], eatType[pub], ...`),
  target = ` ` + the reference (the repo joins context and completion with a space).
- eval_items: one per distinct MR (first-appearance order) with ALL its references, as the
  official scorer scores multi-reference. Table 3 is on the test set, so `test` is the eval split.
- decoding (Table 11 / App D.3): beam 10, length penalty 0.9, no-repeat n-gram 4, 64 new tokens.
  The repo's E2E command uses length penalty 0.8 (NOTES.md); override `generation` to match it.
- metrics: BLEU, NIST, METEOR, ROUGE-L, CIDEr (see `lora_repro.metrics.generation`); main = BLEU.
"""
from __future__ import annotations

from ..metrics.generation import e2e_metrics
from .base import EvalItem, Task, register


@register
class E2E(Task):
    name = "e2e"
    hub_path = "tuetschek/e2e_nlg"
    hub_revision = "refs/convert/parquet"
    columns = ("meaning_representation", "human_reference")
    kind = "generation"
    eval_splits = ("test",)
    main_metric = "BLEU"
    generation = {"num_beams": 10, "length_penalty": 0.9, "no_repeat_ngram_size": 4, "max_new_tokens": 64}

    def prompt(self, example: dict) -> str:
        return example["meaning_representation"]

    def target(self, example: dict) -> str:
        return " " + example["human_reference"]

    def eval_items(self, split) -> list[EvalItem]:
        grouped: dict[str, list[str]] = {}
        for ex in split:
            grouped.setdefault(ex["meaning_representation"], []).append(ex["human_reference"])
        return [EvalItem(self.prompt({"meaning_representation": mr}), refs, {"meaning_representation": mr})
                for mr, refs in grouped.items()]

    def compute_metrics(self, predictions: list, references: list) -> dict[str, float]:
        return e2e_metrics([p.strip() for p in predictions], references)
