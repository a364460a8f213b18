"""`demo/sentiment`: the CPU demo's task, where only a pretrained body can score (`make demo`).

Short review sentences ("the acting was not superb.") labelled negative (0) / positive (1), in SST-2's schema
(`sentence`, `label`, `idx`). The sentiment is carried by one adjective, sometimes negated by "not" (which flips
the label). Training sentences use only `TRAIN_WORDS`; the main eval split `heldout` uses only `HELDOUT_WORDS`, their
synonyms, which no training row contains. A model can score on `heldout` only through what its body already knows
about those words: a randomly initialised body (`model=minilm-random`) fits the training words (the `seen` split,
new sentences with the training words) but stays near chance on `heldout`, while fine-tuning, LoRA, adapters,
BitFit and prefix tuning on the pretrained MiniLM generalise. That is the paper's premise (adapt a pretrained model,
a little) in a form that runs in minutes on two CPU cores.

No hub dataset: the data is this module's fixture (`lora-repro fixture demo/sentiment DIR`), so `task.data_dir`
is required.
"""
from __future__ import annotations

import random
from typing import ClassVar

from .base import TaskConfigError, register
from .glue import GlueTask

# negative, positive; single WordPiece tokens of the MiniLM (BERT uncased) vocabulary
TRAIN_WORDS = (("bad", "terrible", "awful", "boring", "poor", "horrible", "dull", "weak"),
               ("good", "great", "excellent", "wonderful", "nice", "enjoyable", "brilliant", "lovely"))
HELDOUT_WORDS = (("dreadful", "lousy", "miserable", "disappointing", "mediocre", "pathetic", "unpleasant", "bland"),
                 ("fantastic", "superb", "delightful", "terrific", "amazing", "outstanding", "splendid", "pleasant"))
SUBJECTS = ("the movie", "the film", "the story", "the plot", "the acting", "the music", "the ending", "the show",
            "the book", "the meal", "the service", "the hotel", "the game", "the concert", "the trip", "the lecture")
TEMPLATES = ("{s} was {w}.", "{s} was {n}{w}.", "i thought {s} was {n}{w}.", "honestly, {s} is {n}{w}.",
             "{s} felt {n}{w} to me.", "overall {s} was {n}{w}.")
NEGATION = "not "


@register
class SentimentTransfer(GlueTask):
    name = "demo/sentiment"
    hub_path = ""                      # none: the data is the fixture (see the module docstring)
    columns = ("sentence", "label", "idx")
    text_columns = ("sentence",)
    label_names = ("negative", "positive")
    eval_splits = ("heldout", "seen")  # main: unseen synonyms; seen: the training words in new sentences
    train_examples = 256
    avg_tokens = 10
    negation_rate: ClassVar[float] = 0.25

    def load(self, data_dir=None):
        if data_dir is None:
            raise TaskConfigError(f"{self.name} has no hub dataset: write it with `lora-repro fixture {self.name} "
                                  "DIR` and set task.data_dir=DIR")
        return super().load(data_dir)

    def check_data_dir(self, data_dir, problems) -> None:
        if problems.check(data_dir is not None, "task.data_dir", data_dir,
                          f"a directory written by `lora-repro fixture {self.name} DIR` ({self.name} has no hub "
                          "dataset)"):
            super().check_data_dir(data_dir, problems)

    def fixture_rows(self, split: str, n: int, rng: random.Random) -> list[dict]:
        """Balanced labels; the adjective comes from `HELDOUT_WORDS` on `heldout`, else from `TRAIN_WORDS`."""
        words = HELDOUT_WORDS if split == "heldout" else TRAIN_WORDS
        labels = [i % 2 for i in range(n)]
        rng.shuffle(labels)
        rows = []
        for idx, label in enumerate(labels):
            negated = rng.random() < self.negation_rate
            template = rng.choice(TEMPLATES[1:] if negated else TEMPLATES)
            word = rng.choice(words[1 - label if negated else label])
            sentence = template.format(s=rng.choice(SUBJECTS), w=word, n=NEGATION if negated else "")
            rows.append({"sentence": sentence, "label": label, "idx": idx})
        return rows
