"""The paper's Table 1: inference latency of one forward pass of GPT-2 medium, adapters vs LoRA.

The paper's point: adapters add sequential layers that cost latency, most at small batches (+20-30% at batch 1),
while LoRA merged into W costs nothing. Rows, as in the table: batch x seq 32x512 with adapters of
|Θ| = 0.5M, 16x256 and 1x128 with |Θ| = 11M; methods: `ft` (the base model: a fine-tuned model has the
same forward), Adapter^L and Adapter^H with the bottleneck r whose trainable count is closest to |Θ|, `lora` (LoRA
merged into W, the wrapper kept) and `lora_unmerged` (the extra B A x path). A row `<method>` of a method that
can merge (`capabilities`) is timed merged, `<method>_unmerged` unmerged. Method names are those of
`lora_repro.report`, which builds the project's Table 1 from these lines. Mean ± std over `trials` forward passes
after warmup, as the paper averages over 100 trials.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..methods import METHODS, apply_method, capabilities, count_params, get_method
from ..methods.arch import is_head_param
from ..train.precision import compute_dtype
from .measure import PeakMemory, released, summarize, time_calls
from .methods import method_options
from .models import build_model, meta_model

# (batch, seq, |Θ| of the adapters) as in Table 1's columns
PAPER_SHAPES = ((32, 512, 500_000), (16, 256, 11_000_000), (1, 128, 11_000_000))
TINY_SHAPES = ((4, 64, 2_000), (2, 32, 8_000), (1, 16, 8_000))
LATENCY_METHODS = ("ft", "lora", "lora_unmerged", "adapter_l", "adapter_h")
# LoRA's successors, merged where they can merge (QLoRA cannot: 4-bit weights) and unmerged: `--methods` rows
SUCCESSOR_LATENCY = ("qlora_unmerged", "mora", "mora_unmerged", "dora", "dora_unmerged", "rslora", "rslora_unmerged",
                     "pissa", "pissa_unmerged", "loraplus", "loraplus_unmerged")
ADAPTERS = ("adapter_l", "adapter_h")  # rows sized by |Θ| (bottleneck r), not by the method's options
UNMERGED = "_unmerged"


def row_method(row: str) -> tuple[str, bool]:
    """A latency row's method and whether it runs unmerged: `lora_unmerged` -> ("lora", True)."""
    if row.endswith(UNMERGED) and row[:-len(UNMERGED)] in METHODS:
        return row[:-len(UNMERGED)], True
    return row, False


def adapter_count(model_name: str, method: str, r: int, tiny: bool = False) -> int:
    """Trainable parameters (as the paper counts) of an adapter method with bottleneck r: real surgery on meta."""
    model = meta_model(model_name, tiny)
    apply_method(model, {"name": method, "r": r})
    return count_params(model).trainable_paper


def adapter_r_for(model_name: str, method: str, target_params: int, tiny: bool = False) -> tuple[int, int]:
    """The bottleneck r whose trainable count is closest to `target_params`, and that count.

    The count is linear in r (slope and offset from r=1 and r=2).
    """
    c1, c2 = adapter_count(model_name, method, 1, tiny), adapter_count(model_name, method, 2, tiny)
    slope, offset = c2 - c1, c1 - (c2 - c1)
    r = max(1, round((target_params - offset) / slope))
    return r, offset + slope * r


@dataclass(frozen=True)
class LatencySetting:
    model: str = "gpt2-medium"
    precision: str = "fp32"
    trials: int = 100
    warmup: int = 10
    tiny: bool = False
    seed: int = 0
    attention: str = "sdpa"


def _prepared(setting: LatencySetting, method: str, adapter_params: int, device: torch.device):
    model = build_model(setting.model, setting.tiny, device, setting.seed, setting.attention)
    config: dict = {"name": "ft"}
    name, unmerged = row_method(method)
    if name in ADAPTERS:
        r, _ = adapter_r_for(setting.model, name, adapter_params, setting.tiny)
        config = apply_method(model, {"name": name, "r": r}).config
    elif name != "ft":  # ft: the base model (a fine-tuned model has the same forward)
        config = apply_method(model, {"name": name, **method_options(model, name)}).config
        if unmerged:  # a zero-initialised factor (LoRA's B) gets values so that nothing is skipped
            with torch.no_grad():
                for key, p in model.named_parameters():
                    if p.requires_grad and not is_head_param(model, key) and not p.any():
                        p.normal_(std=0.01)
        elif "merge" in capabilities(name):
            get_method(name).merge(model)
    return model.to(compute_dtype(setting.precision)).eval(), config


def measure_latency(setting: LatencySetting, method: str, batch: int, seq: int, adapter_params: int,
                    device: torch.device) -> dict:
    """One Table 1 cell: the fields of a `kind=latency` JSON line."""
    with released(device):
        model, config = _prepared(setting, method, adapter_params, device)
        g = torch.Generator().manual_seed(setting.seed)
        ids = torch.randint(5, model.config.vocab_size, (batch, seq), generator=g).to(device)

        # model and ids are bound as defaults (not closed over), so `del forward, model, ids` below drops every
        # reference to them before released() cleans up
        @torch.inference_mode()
        def forward(model=model, ids=ids):
            return model(input_ids=ids, use_cache=False)

        with PeakMemory(device) as peak:
            times = time_calls(forward, device, setting.warmup, setting.trials)
        trainable_paper = count_params(model).trainable_paper if method in ADAPTERS else None
        del forward, model, ids
    stats = summarize(times)
    model_name = setting.model + ("-tiny" if setting.tiny else "")  # tiny lines never pass for the real model
    return {"kind": "latency", "model": model_name, "tiny": setting.tiny, "method": method,
            "method_config": config, "impl": "ours", "batch": batch, "seq": seq, "precision": setting.precision,
            "adapter_params_target": adapter_params if method in ADAPTERS else None,
            "adapter_params": trainable_paper,
            "tokens_per_s": batch * seq / (stats["mean_ms"] / 1e3),
            "mean_ms": stats["mean_ms"], "std_ms": stats["std_ms"], "median_ms": stats["median_ms"],
            "trials": stats["trials"], "warmup": setting.warmup, "peak_memory_bytes": peak.bytes,
            "peak_memory_kind": peak.kind, "options": {"attention": setting.attention}}


def runnable(methods) -> list[str]:
    """The rows whose method is registered (every row of LATENCY_METHODS is)."""
    return [m for m in methods if row_method(m)[0] in METHODS]
