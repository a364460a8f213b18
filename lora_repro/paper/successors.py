"""LoRA's successors on the paper's settings, at LoRA's trainable-parameter budget: the one place that says which
setting each successor row runs, and what each successor's own paper reports on these settings.

Torch-free (the report reads it); `lora-repro params --successors` counts the rows by model surgery, and
`conf/experiment/successors/` holds the runs (a test holds the two equal).

Settings. RoBERTa-base on GLUE as Table 2's LoRA row (q, v, r = 8, alpha = 8) and GPT-2 medium on E2E as Table 3's
(q, v, r = 4, alpha = 32, dropout 0.1); every successor keeps LoRA's targets, rank and training hyperparameters, and
changes only what defines it:
- QLoRA: LoRA's adapter on a base whose every linear layer of the blocks is NF4 (double-quantized). QLoRA's own
  recipe puts LoRA on every linear layer; here the adapter is LoRA's, so that the row isolates the 4-bit base at an
  identical budget (`qlora` with its default targets is the paper's recipe);
- MoRA: r̂ with r̂² ≈ r (d_in + d_out), the rotation operator (the authors' type 6, their choice for small ranks);
- DoRA: LoRA at the same rank plus a magnitude per output unit (+d_out per matrix: +6% on RoBERTa-base,
  +12.5% on GPT-2 medium);
- rsLoRA: scale alpha / sqrt(r); PiSSA: SVD initialisation; LoRA+: lr_ratio 16 (the LoRA+ paper's default).
"""
from __future__ import annotations

import csv

from ..paths import PAPER_DATA_DIR

SUCCESSORS = ("lora", "qlora", "mora", "dora", "rslora", "pissa", "loraplus")
LABELS = {"lora": "LoRA", "qlora": "QLoRA", "mora": "MoRA", "dora": "DoRA", "rslora": "rsLoRA", "pissa": "PiSSA",
          "loraplus": "LoRA+"}
REPORTED_CSV = "successors_reported.csv"


def _settings(r: int, alpha: int, dropout: float | None) -> dict[str, dict]:
    lora = {"r": r, "alpha": alpha, "targets": ["q", "v"], **({"dropout": dropout} if dropout else {})}
    return {
        "lora": {"name": "lora", **lora},
        "qlora": {"name": "qlora", **lora},
        "mora": {"name": "mora", "r": r, "kind": "rotation", "targets": ["q", "v"],
                 **({"dropout": dropout} if dropout else {})},
        "dora": {"name": "dora", **lora},
        "rslora": {"name": "rslora", **lora},
        "pissa": {"name": "pissa", **lora},
        "loraplus": {"name": "loraplus", **lora, "lr_ratio": 16},
    }


# model config name -> {method: apply_method config}
SETTINGS: dict[str, dict[str, dict]] = {
    "roberta-base": _settings(8, 8, None),      # Table 2's RoBERTa-base LoRA row
    "gpt2-medium": _settings(4, 32, 0.1),       # Table 3's GPT-2 medium LoRA row
}
SETTING_TASKS = {"roberta-base": "GLUE (Table 2)", "gpt2-medium": "E2E (Table 3)"}


def reported() -> list[dict]:
    """What each successor's paper reports on these settings (`data/successors_reported.csv`): one row per
    (method, model, task, metric) with `value` empty where the paper reports none."""
    with open(PAPER_DATA_DIR / REPORTED_CSV, newline="") as f:
        return list(csv.DictReader(f))
