"""What is benchmarked: our methods (through `apply_method`) and PEFT's LoRA as the reference implementation.

A method is written `name` or `name:key=value,key=value` on the command line (`lora:r=8,alpha=16`); values are
parsed as JSON where they can be (`targets=["q","v"]` needs quoting in a shell). `peft_lora` applies PEFT's LoRA
with the same r, alpha and targets as our `lora` default for the model; on GPT-2 it targets the fused `c_attn`
(one A for the whole q,k,v matrix: PEFT's common usage).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from torch import nn

from ..methods import METHODS, apply_method
from ..methods.arch import get_arch

PEFT_LORA = "peft_lora"  # PEFT's LoRA, the reference implementation of our `lora`
# Benchmark settings per method and model family (model_type), under the caller's options. LoRA: the paper's,
# GPT-2 r=4, alpha=32 (Table 11); RoBERTa-base r=8 alpha=8, large r=8 alpha=16; q and v.
PAPER_OPTIONS = {"lora": {"gpt2": {"targets": ["q", "v"], "r": 4, "alpha": 32},
                          "roberta": {"targets": ["q", "v"], "r": 8, "alpha": 16},
                          "deberta-v2": {"targets": ["q", "v"], "r": 8, "alpha": 8},
                          None: {"targets": ["q", "v"]}}}
# LoRA's successors are benchmarked at LoRA's setting (MoRA: the same budget; it has no alpha)
for _name in ("qlora", "dora", "rslora", "pissa", "loraplus"):
    PAPER_OPTIONS[_name] = PAPER_OPTIONS["lora"]
PAPER_OPTIONS["mora"] = {family: {k: v for k, v in o.items() if k != "alpha"} | {"kind": "rotation"}
                         for family, o in PAPER_OPTIONS["lora"].items()}
TRAIN_METHODS = ("ft", "lora", "adapter_h", "adapter_l", "prefix_layer", PEFT_LORA)  # the default rows


@dataclass(frozen=True)
class MethodSpec:
    name: str
    options: dict = field(default_factory=dict)

    @property
    def impl(self) -> str:
        return "peft" if self.name == PEFT_LORA else "ours"

    @property
    def label(self) -> str:
        if not self.options:
            return self.name
        return self.name + ":" + ",".join(f"{k}={json.dumps(v, separators=(',', ':'))}"
                                          for k, v in self.options.items())


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_method(text: str) -> MethodSpec:
    """`lora:r=8,alpha=16` -> MethodSpec("lora", {"r": 8, "alpha": 16}); unknown names fail with the choices."""
    name, _, rest = text.partition(":")
    valid = sorted(set(METHODS) | {PEFT_LORA})
    if name not in valid:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(valid)}")
    options = {}
    if rest:
        # split on commas outside brackets, so that targets=["q","v"] stays whole
        parts, depth, cur = [], 0, ""
        for ch in rest:
            depth += ch in "[{"
            depth -= ch in "]}"
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        for part in parts:
            key, eq, value = part.partition("=")
            if not eq or not key:
                raise ValueError(f"method option {part!r} in {text!r} must be key=value")
            options[key.strip()] = _value(value.strip())
    return MethodSpec(name, options)


def available(names) -> list[str]:
    """The names this environment can run: every registered method; `peft_lora` only where peft is installed."""
    return [n for n in names if n in METHODS or (n == PEFT_LORA and peft_available())]


def peft_available() -> bool:
    try:
        import peft  # noqa: F401
    except ImportError:
        return False
    return True


def method_options(model: nn.Module, name: str, options: dict | None = None) -> dict:
    """A method's benchmark options for this model: its `PAPER_OPTIONS` for the model's family (else for any
    family, key None), overridden by `options`. Methods without paper options take `options` as given."""
    by_family = PAPER_OPTIONS.get(name, {})
    return {**by_family.get(model.config.model_type, by_family.get(None, {})), **(options or {})}


def lora_options(model: nn.Module, options: dict | None = None) -> dict:
    """Our LoRA's options for this model (what PEFT's LoRA is compared with)."""
    return method_options(model, "lora", options)


def peft_target_modules(model: nn.Module, targets: list[str]) -> list[str]:
    """Module-name suffixes PEFT matches: GPT-2's fused c_attn once for q/k/v, else each site's last name."""
    sites = get_arch(model).sites
    return sorted({sites[t].path.rsplit(".", 1)[-1] for t in targets})


def apply_peft_lora(model: nn.Module, options: dict | None = None) -> tuple[nn.Module, dict]:
    """PEFT's LoRA with the same r / alpha / targets; the task head trains too (modules_to_save)."""
    from peft import LoraConfig, get_peft_model
    opts = lora_options(model, options)
    gpt2 = model.config.model_type == "gpt2"
    config = LoraConfig(r=opts["r"], lora_alpha=opts["alpha"], lora_dropout=opts.get("dropout", 0.0),
                        target_modules=peft_target_modules(model, opts["targets"]), fan_in_fan_out=gpt2,
                        task_type="CAUSAL_LM" if gpt2 else "SEQ_CLS")
    return get_peft_model(model, config), {"name": PEFT_LORA, **opts}


def apply_spec(model: nn.Module, spec: MethodSpec) -> tuple[nn.Module, dict]:
    """Apply a benchmarked method in place (PEFT returns a wrapper); returns the model and its config."""
    if spec.name == PEFT_LORA:
        return apply_peft_lora(model, spec.options)
    report = apply_method(model, {"name": spec.name, **method_options(model, spec.name, spec.options)})
    return model, report.config


def trainable_and_total(model: nn.Module) -> tuple[int, int]:
    """Trainable and total parameters (tied weights once), task head included."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
