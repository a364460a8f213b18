"""The method registry and `apply_method`: validate, freeze, inject, count.

A method is one small class in its own module: `defaults` lists every option it takes (an
unknown option is an error), `validate` checks options against the model before anything
changes, and `apply` makes its parameters trainable or injects new modules into a frozen model.

What a method can do beyond training it declares by overriding a capability hook (`CAPABILITIES`);
the defaults say "not supported", so generic code asks `capabilities(name)` instead of testing for
a method's name:

- `merge` / `unmerge`: fold the update into the base weights (inference without extra latency);
- `export_peft`: write the adapter in PEFT's format;
- `low_rank_factors`: the (A, B, scale) of every adapted matrix, read from saved tensors (Sec 7);
- `paper_param_formula`: the paper's closed-form count of trainable parameters.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .arch import get_arch, is_head_param


class MethodConfigError(ValueError):
    """A bad method option: the message names the option, the value and what is allowed."""


class AdapterLoadError(ValueError):
    """The adapter does not fit the model: missing, unexpected or mis-shaped tensors."""


class UnsupportedCapabilityError(NotImplementedError):
    """A method was asked for something it does not declare (see `capabilities`)."""


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


@dataclass(frozen=True)
class LowRankFactor:
    """One adapted matrix as a method's saved tensors hold it: ΔW = scale · B @ A."""
    module: str           # module path in the adapted model, e.g. roberta.encoder.layer.3.attention.self.query
    A: torch.Tensor       # [r, d_in]
    B: torch.Tensor       # [d_out, r] (d_out of the adapted slice for a fused projection)
    scale: float

    @property
    def r(self) -> int:
        return self.A.shape[0]


# capability -> what it is for (error messages); a method has it when it overrides the hook of that name
CAPABILITIES = {
    "merge": "folding the update into the base weights for inference (merge / unmerge)",
    "export_peft": "export in PEFT's adapter format",
    "low_rank_factors": "low-rank factors (A, B, scale) per layer and target, for the Sec 7 analyses",
    "paper_param_formula": "the paper's closed-form count of trainable parameters",
}


class Method:
    """Options, checks and surgery of one method; capability hooks are classmethods (no instance state)."""
    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def validate(self, model: nn.Module, cfg: dict) -> None:
        """Raise MethodConfigError for bad options. Must not modify the model."""

    def apply(self, model: nn.Module, cfg: dict) -> None:
        """Make this method's parameters trainable (the model arrives fully frozen)."""
        raise NotImplementedError

    # --- capabilities: the defaults say "not supported" ------------------------------------------------

    @classmethod
    def merge(cls, model: nn.Module) -> nn.Module:
        """Fold the trained update into the base weights, in place and idempotent; returns the model."""
        raise cls._unsupported("merge")

    @classmethod
    def unmerge(cls, model: nn.Module) -> nn.Module:
        """Undo `merge` so that training can go on."""
        raise cls._unsupported("merge")

    @classmethod
    def export_peft(cls, model: nn.Module, directory: Any, base_model_name_or_path: str) -> Any:
        """Write the adapted model as a PEFT adapter directory (`PeftModel.from_pretrained` loads it)."""
        raise cls._unsupported("export_peft")

    @classmethod
    def low_rank_factors(cls, state_dict: dict[str, torch.Tensor], config: dict
                         ) -> dict[tuple[int, str], LowRankFactor]:
        """The factors of every adapted matrix by (layer, canonical target), from the tensors that
        `save_adapter` wrote and the adapter config; raise AdapterLoadError for tensors that do not pair."""
        raise cls._unsupported("low_rank_factors")

    @classmethod
    def paper_param_formula(cls, model: nn.Module, cfg: dict) -> int | None:
        """The paper's closed-form trainable-parameter count for `cfg` (defaults filled in) on this model's
        shapes, or None where the paper gives no formula. Must equal `apply_method`'s `trainable_paper`."""
        return None

    # --- hooks with a neutral default ----------------------------------------------------------------

    @classmethod
    def check_adapter_config(cls, model: nn.Module, config: dict, source: str = "adapter") -> None:
        """Before `load_adapter` copies tensors: raise AdapterLoadError for a saved config that fits the
        tensors' shapes but not the model (e.g. an option that changes a scale)."""

    @classmethod
    def _unsupported(cls, capability: str) -> UnsupportedCapabilityError:
        having = methods_with(capability)
        return UnsupportedCapabilityError(
            f"method {cls.name!r} does not support {CAPABILITIES[capability]}; "
            f"methods that do: {', '.join(having) or 'none'}")


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a Method known by its `name` (the package registers its own modules on import)."""
    METHODS[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Forget a registered method (for methods registered from outside the package, e.g. in tests)."""
    METHODS.pop(name, None)


def get_method(name: str) -> type[Method]:
    """The registered class of a method name; unknown names fail with the valid ones."""
    if name not in METHODS:
        raise MethodConfigError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]


def capabilities(name: str | type[Method]) -> set[str]:
    """What a method declares beyond training: the names of `CAPABILITIES` whose hook it overrides."""
    cls = get_method(name) if isinstance(name, str) else name
    return {c for c in CAPABILITIES if getattr(cls, c).__func__ is not getattr(Method, c).__func__}


def methods_with(capability: str) -> list[str]:
    """Registered method names that have `capability`, in registry order."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; capabilities: {', '.join(CAPABILITIES)}")
    return [n for n, cls in METHODS.items() if capability in capabilities(cls)]


def _plain(cfg: Any) -> dict:
    if isinstance(cfg, str):
        return {"name": cfg}
    if not isinstance(cfg, Mapping):
        try:  # an OmegaConf DictConfig, without importing omegaconf where it is absent
            from omegaconf import OmegaConf
            cfg = OmegaConf.to_container(cfg, resolve=True)
        except Exception as e:  # noqa: BLE001
            raise MethodConfigError(
                f"method config must be a mapping or a method name, got {type(cfg).__name__}") from e
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(cfg).items()}


def resolve_config(cfg: Any) -> tuple[type[Method], dict]:
    """The method class and its full options (defaults filled in); errors name bad keys and values."""
    cfg = _plain(cfg)
    name = cfg.pop("name", None)
    cls = get_method(name)
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


def paper_params(model: nn.Module, cfg: Any) -> int | None:
    """The paper's formula count of a method config on this model (None where the method has none)."""
    cls, options = resolve_config(cfg)
    return cls.paper_param_formula(model, options)
