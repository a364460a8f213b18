"""`lora-repro params --table {2,3,4}`: exact trainable-parameter counts (and the method's own formula, where it
has one) of every row of the paper's Tables 2 (GLUE), 3 (E2E) and 4 (GPT-3), next to the figure the paper prints.

Each count comes from real model surgery, not from a formula: the architecture is built from
`lora_repro/models/configs/*.json` on the meta device (no weights, no download, seconds even for the
GPT-3 shape) and `apply_method` is called with the row's setting. `trainable_params` counts as the
paper does (task head left out; microsoft/LoRA issue 16); `trainable_params_with_head` adds the
head of a 2-label sequence classifier for the encoders (GPT-2's LM head is tied to the input
embedding, so it adds nothing). Where the exact count is further from the printed figure than the
figure's rounding, `note` says why.
"""
from __future__ import annotations

import argparse
import copy
import csv
import functools
import sys

import torch

from ..methods import apply_method, paper_params
from ..models import arch_config, meta_model

# the rows' settings live in the torch-free rows.py; re-exported here for callers of the counts
from .rows import MODEL_CONFIGS, ROWS, TABLE_FILES, Row, paper_rows, row_key, within_rounding  # noqa: F401

HEADER = ["model", "method", "setting", "trainable_params", "paper_trainable_params", "note",
          "trainable_params_with_head", "formula_params"]


@functools.cache
def _template(config_name: str) -> torch.nn.Module:
    """The architecture on the meta device, heads as every run gets them (encoders: 2 labels)."""
    return meta_model(arch_config(config_name), num_labels=2)


def count_row(model_name: str, method: dict) -> tuple[int, int, int | None]:
    """(paper count, count incl. task head, the method's own closed-form count or None) for a method config on a
    meta-device model."""
    model = copy.deepcopy(_template(MODEL_CONFIGS[model_name]))
    formula = paper_params(model, method)      # before surgery: the formula reads the base architecture
    with torch.device("meta"):
        report = apply_method(model, method)
    return report.params.trainable_paper, report.params.trainable, formula


def setting(method: dict) -> str:
    parts = [method["name"]] + [f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                                for k, v in method.items() if k != "name"]
    return " ".join(parts)


def table(table: int) -> list[dict]:
    out = []
    for paper in paper_rows(table):
        key = row_key(paper)
        if key not in ROWS:
            raise KeyError(f"table {table}: no setting for paper row {key}")
        spec = ROWS[key]
        count, with_head, formula = count_row(paper["model"], spec.method)
        out.append({"model": paper["model"], "method": paper["method"] + (paper.get("marker") or "").replace("*", ""),
                    "setting": setting(spec.method), "trainable_params": count,
                    "paper_trainable_params": paper["trainable_params"], "note": spec.note,
                    "trainable_params_with_head": with_head, "formula_params": "" if formula is None else formula})
    return out


SUCCESSOR_HEADER = ["model", "method", "setting", "trainable_params", "vs_lora", "trainable_params_with_head",
                    "formula_params", "frozen_bits_per_weight"]


def frozen_bits(model_name: str, method: dict) -> float | None:
    """Storage of the frozen block projections per weight where the method quantizes them (QLoRA), else None."""
    from ..methods.qlora import frozen_weight_bits, nf4_layers
    model = copy.deepcopy(_template(MODEL_CONFIGS[model_name]))
    with torch.device("meta"):
        apply_method(model, method)
    return frozen_weight_bits(model) if nf4_layers(model) else None


def successors() -> list[dict]:
    """LoRA's successors at LoRA's budget on the settings of Tables 2 and 3 (`lora_repro.paper.successors`)."""
    from .successors import LABELS, SETTINGS
    out, paper_name = [], {config: paper for paper, config in MODEL_CONFIGS.items()}
    for model, methods in SETTINGS.items():
        lora = count_row(paper_name[model], methods["lora"])[0]
        for name, method in methods.items():
            count, with_head, formula = count_row(paper_name[model], method)
            bits = frozen_bits(paper_name[model], method) if name == "qlora" else None
            out.append({"model": model, "method": LABELS[name], "setting": setting(method), "trainable_params": count,
                        "vs_lora": f"{count / lora:.3f}", "trainable_params_with_head": with_head,
                        "formula_params": "" if formula is None else formula,
                        "frozen_bits_per_weight": "" if bits is None else f"{bits:.3f}"})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lora-repro params", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--table", type=int, choices=sorted(TABLE_FILES),
                       help="the paper's table: 2 (GLUE), 3 (E2E), 4 (GPT-3)")
    which.add_argument("--successors", action="store_true",
                       help="LoRA's successors (QLoRA, MoRA, DoRA, rsLoRA, PiSSA, LoRA+) at LoRA's budget on the "
                            "settings of Tables 2 and 3")
    args = parser.parse_args(argv)
    rows, header = (successors(), SUCCESSOR_HEADER) if args.successors else (table(args.table), HEADER)
    writer = csv.DictWriter(sys.stdout, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
