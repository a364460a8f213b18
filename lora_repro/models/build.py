"""The one model build: an architecture config (shipped JSON name, path or transformers config) -> a model,
pretrained or random init, on any device (`meta`: shapes without storage), full size or tiny.

One head rule: decoder-only architectures (`methods.arch.ARCHS[...].decoder_only`, GPT-2) get
`AutoModelForCausalLM`, encoders `AutoModelForSequenceClassification` with the task's labels.
"""
from __future__ import annotations

import copy
from contextlib import nullcontext
from pathlib import Path

from ..methods.arch import ARCHS
from .source import ModelConfigError, arch_values, resolve_source
from .tiny import tiny_overrides


def config_from_values(values: dict, overrides: dict | None = None, tiny: bool = False, name=None):
    """A transformers config from JSON keys; tiny overrides, then `overrides`, go in before construction, so
    that derived sizes (DeBERTa's pooler) follow them."""
    from transformers import AutoConfig

    values = dict(values)
    model_type = values.pop("model_type", None)
    if model_type not in ARCHS:
        raise ModelConfigError(f"model {name!r} has model_type {model_type!r}; supported: {sorted(ARCHS)}")
    if tiny:
        values.update(tiny_overrides(model_type))
    values.update(overrides or {})
    return AutoConfig.for_model(model_type, **values)


def arch_config(name: str | Path, tiny: bool = False, overrides: dict | None = None):
    """The config of a shipped architecture (`lora_repro/models/configs/<name>.json`) or a config JSON path."""
    return config_from_values(arch_values(name), overrides, tiny, name)


def is_decoder_only(config) -> bool:
    return ARCHS[config.model_type].decoder_only


def head_class(config):
    """The one head rule: a causal LM for decoder-only architectures, else a sequence classifier."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    return AutoModelForCausalLM if is_decoder_only(config) else AutoModelForSequenceClassification


def task_num_labels(task) -> int:
    """Labels of an encoder's head for `task` (1 = regression); generation tasks need a decoder."""
    if task.kind == "regression":
        return 1
    if task.kind == "classification":
        return task.num_labels
    raise ModelConfigError(f"task {task.name!r} is a {task.kind} task: it needs a decoder-only model (gpt2)")


def build(arch, task=None, *, num_labels: int | None = None, device=None, pretrained: str | None = None,
          tiny: bool = False, **model_kwargs):
    """The model of `arch` (a name of `lora_repro/models/configs`, a JSON path, or a transformers config, which is
    copied, never changed). Encoders get `num_labels`, else the task's (`task_num_labels`), else 2.
    `pretrained`: load weights from that source; otherwise random init from torch's RNG (seed it first).
    `device`: where parameters are created (`"meta"`: no storage); default: transformers' default."""
    config = arch_config(arch, tiny) if isinstance(arch, (str, Path)) else copy.deepcopy(arch)
    if not is_decoder_only(config):
        config.num_labels = num_labels or (task_num_labels(task) if task is not None else 2)
        if task is not None and task.kind == "regression":
            config.problem_type = "regression"
    cls = head_class(config)
    import torch
    with torch.device(device) if device is not None else nullcontext():
        if pretrained:
            return cls.from_pretrained(resolve_source(pretrained), config=config, **model_kwargs)
        return cls.from_config(config, **model_kwargs)


def meta_model(config, task=None, num_labels: int | None = None):
    """The architecture with no storage (the meta device): module names and shapes for a method's `validate`
    and for parameter counts. Never fails on the task: an encoder gets `num_labels`, else the task's label
    count, else 2 (the head's size is all that depends on it)."""
    labels = num_labels or (task.num_labels if task is not None and getattr(task, "num_labels", None) else 2)
    return build(config, num_labels=labels, device="meta")


def max_positions(config) -> int | None:
    """Longest input the architecture takes (RoBERTa reserves pad_token_id+1 positions)."""
    n = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if n and config.model_type == "roberta":
        n -= (config.pad_token_id or 0) + 1
    return n
