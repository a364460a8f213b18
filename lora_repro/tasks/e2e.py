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
  METEOR is the official METEOR 1.5 (Java); without Java it is left out.
- fixture rows: template MRs whose references spell out the slots (one reference per MR in train,
  three in the eval split, as the hub has several).
"""
from __future__ import annotations

import random

from ..metrics.generation import e2e_metrics
from .base import EvalItem, Task, register

_NAMES = ("The Vaults", "Blue Spice", "The Eagle", "Zizzi", "Aromi", "The Mill", "Cotto", "Giraffe")
_EAT = ("pub", "coffee shop", "restaurant")
_FOOD = ("Italian", "French", "Indian", "Chinese", "English")
_AREA = ("city centre", "riverside")


@register
class E2E(Task):
    name = "e2e"
    train_examples = 42_061
    avg_tokens = 60
    hub_path = "tuetschek/e2e_nlg"
    hub_revision = "refs/convert/parquet"
    columns = ("meaning_representation", "human_reference")
    text_columns = ("meaning_representation", "human_reference")
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

    def fixture_rows(self, split: str, n: int, rng: random.Random) -> list[dict]:
        refs_per_mr = 1 if split == self.train_split else 3
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
