"""Training tokens/s per (model, method) for the cost model (the planner's GPU-hours): measured where a GPU run of
`lora-repro bench train` exists in results/bench, else an ASSUMPTION from a FLOP model, labelled as such.

Assumed H100 figure (until measured):
    tokens/s = EFFECTIVE_FLOPS / flops_per_token
    flops_per_token = k * N_matmul + 6 * n_layer * seq * d_model
- N_matmul: parameters that take part in a matmul per token (every weight matrix of the blocks, plus the LM head
  for GPT-2; embeddings are lookups), counted on the meta device from lora_repro/models/configs;
- k = 6 for full fine-tuning (forward 2, input gradients 2, weight gradients 2) and 4 for a frozen body
  (LoRA, adapters, prefix, BitFit: no weight gradients for W0);
- the attention scores (QK^T and AV: forward 2 * 2 * seq * d per layer per token, x3 with backward), which no
  method saves;
- EFFECTIVE_FLOPS = 200 TFLOP/s bf16 (~20% of the H100 SXM's 989 TFLOP/s dense bf16 peak: an assumption for
  small-batch eager PyTorch), 100 TFLOP/s fp32 (TF32).
"""
from __future__ import annotations

import functools

from torch import nn

from ..models import is_decoder_only
from .models import PRESETS, meta_model
from .report import read_jsonl

EFFECTIVE_FLOPS = {"bf16": 200e12, "fp16": 200e12, "fp32": 100e12}
FULL_BODY_METHODS = ("ft",)
ASSUMPTION = ("assumption: FLOP model (6N FT / 4N frozen body + attention) at {flops:.0f} TFLOP/s effective "
              "on one H100, not measured")


@functools.cache
def matmul_params(model_name: str) -> tuple[int, int, int]:
    """(parameters in per-token matmuls, layers, d_model) of the architecture (meta model of `models.build`)."""
    model = meta_model(model_name)
    cfg = model.config
    n = sum(m.weight.numel() for m in model.modules()
            if hasattr(m, "weight") and getattr(m.weight, "ndim", 0) == 2 and not isinstance(m, nn.Embedding))
    if is_decoder_only(cfg):  # the tied LM head is a matmul per token as well
        # NOTE: the `lm_head` Linear is already in the sum above, so this counts it twice; kept as is
        # (the planner's assumed figures must not move in a restructure) until someone decides to fix it.
        n += cfg.vocab_size * cfg.hidden_size
    return n, cfg.num_hidden_layers, cfg.hidden_size


def assumed_tokens_per_s(model_name: str, method: str, seq: int, precision: str = "bf16") -> float:
    n, layers, d = matmul_params(model_name)
    k = 6 if method in FULL_BODY_METHODS else 4
    per_token = k * n + 6 * layers * seq * d
    return EFFECTIVE_FLOPS[precision] / per_token


def measured(bench_dir, device_type: str = "cuda") -> dict[tuple[str, str, str], dict]:
    """The newest all-fast-paths-on training figure per (model, method, precision) from a GPU run (not tiny)."""
    out: dict[tuple[str, str, str], dict] = {}
    for r in sorted(read_jsonl(bench_dir), key=lambda r: r["run_id"]):
        if (r["kind"] == "train" and r.get("device_type") == device_type and not r.get("tiny")
                and r.get("ablation", "all_on") == "all_on" and r["impl"] == "ours"):
            out[(r["model"], r["method"], r["precision"])] = r
    return out


def table(bench_dir=None, methods=("ft", "lora", "adapter_h", "adapter_l", "prefix_layer", "bitfit"),
          precision: str = "bf16") -> list[dict]:
    """One row per (preset model, method): tokens/s and where the figure comes from."""
    found = measured(bench_dir) if bench_dir else {}
    rows = []
    for preset in PRESETS.values():
        for method in methods:
            m = found.get((preset.model, method, precision))
            if m:
                rows.append({"model": preset.model, "method": method, "precision": precision, "batch": m["batch"],
                             "seq": m["seq"], "tokens_per_s": round(m["tokens_per_s"]),
                             "source": f"measured: {m['device']}, run {m['run_id']}"})
            else:
                rows.append({"model": preset.model, "method": method, "precision": precision, "batch": preset.batch,
                             "seq": preset.seq,
                             "tokens_per_s": round(assumed_tokens_per_s(preset.model, method, preset.seq, precision)),
                             "source": ASSUMPTION.format(flops=EFFECTIVE_FLOPS[precision] / 1e12)})
    return rows


def planner_tokens_per_s(bench_dir) -> dict[tuple[str, str], float]:
    """Measured H100 figures as the planner's TOKENS_PER_S_MEASURED wants them: (model, method) -> tokens/s."""
    return {(model, method): r["tokens_per_s"] for (model, method, precision), r in measured(bench_dir).items()
            if precision == "bf16"}
