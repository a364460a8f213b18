"""Model surgery for every adaptation method the LoRA paper compares.

    from lora_repro.methods import apply_method
    report = apply_method(model, {"name": "lora", "r": 8, "alpha": 16, "targets": ["q", "v"]})
    print(report.params)   # trainable (head included), trainable as the paper counts, total

Importing this package registers every method; it needs only torch and transformers.
"""
from . import adapters, bitfit, finetune, lora, prefix  # noqa: F401  (registration)
from .arch import CANONICAL_TARGETS, UnsupportedModelError, available_sites, get_arch
from .base import METHODS, MethodConfigError, MethodReport, ParamCount, apply_method, count_params, resolve_config
from .io import AdapterLoadError, apply_adapter, load_adapter, load_adapter_config, save_adapter
from .lora import LoRALayer, lora_layers, lora_to_plain, merge_lora, merged_copy, unmerge_lora
from .peft_export import export_to_peft

__all__ = [
    "CANONICAL_TARGETS", "METHODS", "MethodConfigError", "MethodReport", "ParamCount", "UnsupportedModelError",
    "apply_method", "available_sites", "count_params", "get_arch", "resolve_config",
    "AdapterLoadError", "LoRALayer", "apply_adapter", "export_to_peft", "load_adapter", "load_adapter_config",
    "lora_layers", "lora_to_plain", "merge_lora", "merged_copy", "save_adapter", "unmerge_lora",
]
