"""Model surgery for every adaptation method the LoRA paper compares.

    from lora_repro.methods import apply_method
    report = apply_method(model, {"name": "lora", "r": 8, "alpha": 16, "targets": ["q", "v"]})
    print(report.params)   # trainable (head included), trainable as the paper counts, total

Importing this package imports every module in it, and each method module registers its classes with
`@register`: a new method is one module here (plus its YAML in conf/method/), with no import line to add.
What a method supports beyond training is `capabilities(name)`. Needs only torch and transformers.
"""
import importlib
import pkgutil

from .arch import CANONICAL_TARGETS, UnsupportedModelError, available_sites, get_arch, layer_of
from .base import (
    CAPABILITIES,
    METHODS,
    AdapterLoadError,
    LowRankFactor,
    Method,
    MethodConfigError,
    MethodReport,
    ParamCount,
    UnsupportedCapabilityError,
    apply_method,
    capabilities,
    count_params,
    get_method,
    methods_with,
    paper_params,
    register,
    resolve_config,
    unregister,
)


def _import_all(package: str, path) -> list[str]:
    """Import every module of the package (registration happens on import); private modules are skipped."""
    names = [m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_")]
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names


MODULES = _import_all(__name__, __path__)

from .io import apply_adapter, load_adapter, load_adapter_config, save_adapter  # noqa: E402
from .lora import LoRALayer, lora_layers, lora_to_plain, merge_lora, merged_copy, unmerge_lora  # noqa: E402
from .peft_export import export_to_peft  # noqa: E402

__all__ = [
    "CANONICAL_TARGETS", "CAPABILITIES", "METHODS", "LowRankFactor", "Method", "MethodConfigError", "MethodReport",
    "ParamCount", "UnsupportedCapabilityError", "UnsupportedModelError",
    "apply_method", "available_sites", "capabilities", "count_params", "get_arch", "get_method", "layer_of",
    "methods_with", "paper_params", "register", "resolve_config", "unregister",
    "AdapterLoadError", "LoRALayer", "apply_adapter", "export_to_peft", "load_adapter", "load_adapter_config",
    "lora_layers", "lora_to_plain", "merge_lora", "merged_copy", "save_adapter", "unmerge_lora",
]
