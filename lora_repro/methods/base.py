"""The method registry and `apply_method`: validate, freeze, inject, count.

A method is one small class in its own module: `defaults` lists every option it takes (an
unknown option is an error), `validate` checks options against the model before anything
changes, and `apply` makes its parameters trainable or injects new modules into a frozen model.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from .arch import get_arch, is_head_param


class MethodConfigError(ValueError):
    """A bad method option: the message names the option, the value and what is allowed."""


@dataclass(frozen=True)
class ParamCount:
    trainable: int        # everything that trains, task head included
    trainable_paper: int  # as the paper counts (microsoft/LoRA issue 16): task head left out
    total: int


@dataclass(frozen=True)
class MethodReport:
    method: str
    config: dict
    params: ParamCount

    @property
    def trainable_params(self) -> int:
        return self.params.trainable


class Method:
    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def validate(self, model: nn.Module, cfg: dict) -> None:
        """Raise MethodConfigError for bad options. Must not modify the model."""

    def apply(self, model: nn.Module, cfg: dict) -> None:
        """Make this method's parameters trainable (the model arrives fully frozen)."""
        raise NotImplementedError


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


def _plain(cfg: Any) -> dict:
    if isinstance(cfg, str):
        return {"name": cfg}
    if not isinstance(cfg, Mapping):
        try:  # an OmegaConf DictConfig, without importing omegaconf where it is absent
            from omegaconf import OmegaConf
            cfg = OmegaConf.to_container(cfg, resolve=True)
        except Exception as e:  # noqa: BLE001
            raise MethodConfigError(f"method config must be a mapping or a method name, got {type(cfg).__name__}") from e
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(cfg).items()}


def resolve_config(cfg: Any) -> tuple[type[Method], dict]:
    """The method class and its full options (defaults filled in); errors name bad keys and values."""
    cfg = _plain(cfg)
    name = cfg.pop("name", None)
    if name not in METHODS:
        raise MethodConfigError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    cls = METHODS[name]
    unknown = sorted(set(cfg) - set(cls.defaults))
    if unknown:
        raise MethodConfigError(
            f"method {name!r} got unknown option(s) {unknown}; its options are: {sorted(cls.defaults) or 'none'}")
    return cls, {**cls.defaults, **cfg}


def count_params(model: nn.Module) -> ParamCount:
    trainable = paper = total = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
            if not is_head_param(model, name):
                paper += p.numel()
    return ParamCount(trainable=trainable, trainable_paper=paper, total=total)


def apply_method(model: nn.Module, cfg: Any) -> MethodReport:
    """Apply an adaptation method in place: validate, freeze the body, inject, unfreeze the head.

    `cfg` is a method name or a mapping like ``{"name": "lora", "r": 8, "targets": ["q", "v"]}``.
    """
    cls, options = resolve_config(cfg)
    get_arch(model)  # unsupported architecture -> clear error before anything changes
    method = cls()
    method.validate(model, options)
    for name, p in model.named_parameters():
        p.requires_grad_(is_head_param(model, name))
    method.apply(model, options)
    return MethodReport(method=cls.name, config={"name": cls.name, **options}, params=count_params(model))
