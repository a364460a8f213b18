"""Export a LoRA model in PEFT's adapter format: `PeftModel.from_pretrained(base, directory)` reproduces it.

Each LoRALayer becomes a PEFT LoRA module with the same path (`base_model.model.<path>.lora_A.weight`, [r, d_in];
`...lora_B.weight`, [d_out, r]); the task head goes in `modules_to_save` (`base_model.model.<head>.<key>`).

GPT-2's fused c_attn carries separate factors per q/k/v slice here, while PEFT has one (A, B) per module.
The same update is written exactly as one block-structured pair of rank R = sum of the slice ranks:

    A = [A_q; A_v]                     (R x d)
    B = [[B_q, 0], [0, 0], [0, B_v]]   (3d x R: rows of the k slice and off-diagonal blocks are zero)

so that B A = [B_q A_q; 0; B_v A_v]. PEFT scales by lora_alpha / R, so lora_alpha = alpha * R / r keeps
the scale alpha / r; where the slices have different ranks, the ratio of each slice's scale to the common one
is folded into its block of B. The function is the same; training on in PEFT would not be (its B would
let the zero blocks train too).

PEFT's module matching is by name suffix, so targets are written as one anchored regex (`target_modules` as a
string is matched with re.fullmatch) -- a plain suffix like "output.dense" would also catch
"attention.output.dense". `rank_pattern` / `alpha_pattern` carry ranks that differ between modules.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from .arch import base_prefix, get_arch, is_head_param
from .lora import LoRALayer, lora_layers

PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"
PREFIX = "base_model.model."


def peft_factors(layer: LoRALayer) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    """One (A, B, r, lora_alpha) for PEFT with B A * lora_alpha / r equal to the layer's whole update."""
    names = list(layer.slices)
    rank = sum(layer.r[t] for t in names)
    d_out = layer.base_layer.weight.shape[1 if layer.fan_in_fan_out else 0]
    # == alpha / r (rsLoRA: alpha / sqrt(r)) when every slice has rank r
    scale = layer.alpha / math.sqrt(rank / len(names)) if layer.rank_stabilized else layer.alpha * len(names) / rank
    a = torch.cat([layer.lora_A[t].detach() for t in names])
    b = a.new_zeros(d_out, rank)
    col = 0
    for t in names:
        sl, r = layer.slices[t], layer.r[t]
        b[sl, col:col + r] = layer.lora_B[t].detach() * (layer.scaling[t] / scale)
        col += r
    # PEFT scales by lora_alpha / rank (use_rslora: lora_alpha / sqrt(rank))
    return a, b, rank, scale * (math.sqrt(rank) if layer.rank_stabilized else rank)


def _site_regex(model: nn.Module, layer_name: str) -> str:
    """`<layers>.<i>.<site path>` with the layer index generalised, as an anchored regex."""
    arch = get_arch(model)
    layers = base_prefix(model) + arch.layers
    for path in sorted({s.path for s in arch.sites.values()}, key=len, reverse=True):
        if re.fullmatch(re.escape(layers) + r"\.\d+\." + re.escape(path), layer_name):
            return re.escape(arch.layers) + r"\.\d+\." + re.escape(path)
    raise ValueError(f"export_to_peft: LoRA layer {layer_name!r} is not at a known site of this architecture")


def _task_type(model: nn.Module) -> str | None:
    cls = type(model).__name__
    if "ForSequenceClassification" in cls:
        return "SEQ_CLS"
    if "ForCausalLM" in cls or "LMHeadModel" in cls:
        return "CAUSAL_LM"
    return None


def export_to_peft(model: nn.Module, directory: str | Path, base_model_name_or_path: str, **config) -> Path:
    """Write `adapter_config.json` + `adapter_model.safetensors` in PEFT's LoRA format into `directory`.

    `config` overrides keys of PEFT's LoraConfig for LoRA's successors (`use_dora`, `init_lora_weights`); a
    layer's extra tensors (DoRA's magnitude) come from its `peft_extra_tensors`."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("export_to_peft: the model has no LoRA layers; apply_method(model, {'name': 'lora'}) first")
    lora_keys = {n for name, layer in layers for n, p in layer.named_parameters(prefix=name)
                 if ".base_layer." not in n}
    other = [n for n, p in model.named_parameters()
             if p.requires_grad and n not in lora_keys and not is_head_param(model, n)]
    if other:
        raise ValueError(f"export_to_peft: PEFT's LoRA format holds LoRA factors and the task head only; "
                         f"these body parameters also train: {other[:5]}")
    dropouts = {layer.dropout.p if isinstance(layer.dropout, nn.Dropout) else 0.0 for _, layer in layers}

    tensors, patterns = {}, {}
    for name, layer in layers:
        a, b, rank, lora_alpha = peft_factors(layer)
        tensors[f"{PREFIX}{name}.lora_A.weight"] = a.contiguous()
        tensors[f"{PREFIX}{name}.lora_B.weight"] = b.contiguous()
        for key, value in getattr(layer, "peft_extra_tensors", dict)().items():
            tensors[f"{PREFIX}{name}.{key}"] = value.detach().contiguous()
        pattern = _site_regex(model, name)
        if patterns.setdefault(pattern, (rank, lora_alpha)) != (rank, lora_alpha):
            raise ValueError(f"export_to_peft: modules matching {pattern!r} have different ranks or scales")

    heads = sorted({n.split(".")[0] for n, p in model.named_parameters()
                    if p.requires_grad and is_head_param(model, n)})
    for head in heads:
        for key, value in model.get_submodule(head).state_dict().items():
            tensors[f"{PREFIX}{head}.{key}"] = value.detach().contiguous()

    (r0, alpha0), *_ = patterns.values()
    config = {
        "peft_type": "LORA",
        "task_type": _task_type(model),
        "base_model_name_or_path": base_model_name_or_path,
        "r": r0,
        "lora_alpha": alpha0,
        "lora_dropout": max(dropouts),
        "target_modules": r"(.*\.)?(" + "|".join(patterns) + ")",
        "rank_pattern": {p: r for p, (r, _) in patterns.items() if r != r0},
        "alpha_pattern": {p: a for p, (_, a) in patterns.items() if a != alpha0},
        "fan_in_fan_out": any(layer.fan_in_fan_out for _, layer in layers),
        "bias": "none",
        "modules_to_save": heads or None,
        "init_lora_weights": True,
        "use_rslora": any(layer.rank_stabilized for _, layer in layers),
        "use_dora": False,
        "inference_mode": True,
        **config,
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.cpu() for k, v in tensors.items()}, str(directory / PEFT_WEIGHTS), metadata={"format": "pt"})
    (directory / PEFT_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return directory
