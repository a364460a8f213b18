"""Adapter-only checkpoints: the trainable tensors of a run, by state-dict key, plus the method config.

The point of a parameter-efficient method is that a task costs only its trainable tensors: LoRA r=8 on
roberta-base stores a few MB next to a shared 500 MB base. This works for every method (it keys on
`requires_grad`), and is loaded back onto a model rebuilt with `apply_method(model, same config)`.

    save_adapter(model, "out/adapter", report.config, base_model_name="roberta-base")
    model = AutoModelForSequenceClassification.from_pretrained("roberta-base", num_labels=3)
    apply_adapter(model, "out/adapter")          # = apply_method(config) + load_adapter
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ..paths import create_mode
from .arch import is_head_param
from .base import METHODS, AdapterLoadError, MethodReport, apply_method, resolve_config

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
NON_METHOD_KEYS = ("base_model",)  # keys of adapter_config.json that are not method options


def trainable_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter that trains (task head included), by its state-dict key."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def save_adapter(model: nn.Module, directory: str | Path, method_config: Any,
                 base_model_name: str | None = None) -> Path:
    """Write `adapter.safetensors` (trainable tensors only) and `adapter_config.json` into `directory`."""
    if isinstance(method_config, MethodReport):
        method_config = method_config.config
    if isinstance(method_config, dict):  # e.g. a loaded adapter config, base_model included
        method_config = method_config_of(method_config)
    cls, options = resolve_config(method_config)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: p.detach().cpu().contiguous() for k, p in trainable_tensors(model).items()}
    config = {"name": cls.name, **options, "base_model": base_model_name}
    # the weights carry the config they were trained with and a checksum of their bytes, so an edited
    # adapter_config.json or damaged tensor data is refused on load instead of changing a scale silently
    metadata = {"format": "pt", "adapter_config": json.dumps(config, sort_keys=True),
                "tensors_sha256": tensors_sha256(tensors)}
    # each file replaced whole (temp file + rename): a kill mid-save never leaves a torn adapter, and a
    # hard link to the previous file (run.adapter_store) keeps the previous content
    _write_replacing(directory / ADAPTER_WEIGHTS, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    _write_replacing(directory / ADAPTER_CONFIG,
                     lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))
    return directory


def _write_replacing(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(str(tmp))
        os.chmod(tmp, create_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """A checksum of the tensors' names, dtypes, shapes and bytes (stored in the weights file's header)."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_adapter_config(directory: str | Path) -> dict:
    """The adapter's config: method name and options plus `base_model`."""
    path = Path(directory) / ADAPTER_CONFIG
    if not path.is_file():
        raise AdapterLoadError(f"no {ADAPTER_CONFIG} in {directory}")
    try:
        config = json.loads(path.read_text())
    except (ValueError, OSError) as e:
        raise AdapterLoadError(f"{path} is not readable JSON ({type(e).__name__}: {e}); the adapter is damaged: "
                               f"re-run the run that made it") from None
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        raise AdapterLoadError(f"{path} is not an adapter config (a JSON object with the method's 'name')")
    return config


def load_adapter_tensors(directory: str | Path) -> dict[str, torch.Tensor]:
    """The saved tensors by state-dict key (what `save_adapter` wrote), checked against the checksum and the
    config stored with them: AdapterLoadError naming the file when they are damaged or do not agree."""
    path = Path(directory) / ADAPTER_WEIGHTS
    if not path.is_file():
        raise AdapterLoadError(f"no {ADAPTER_WEIGHTS} in {directory}")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise AdapterLoadError(f"{path} is not a readable safetensors file ({e}); the adapter is damaged "
                               f"(truncated or overwritten): re-run the run that made it") from None
    if "tensors_sha256" in metadata and tensors_sha256(tensors) != metadata["tensors_sha256"]:
        raise AdapterLoadError(f"{path}: the tensor data does not match the checksum saved with it; the file "
                               f"was damaged after it was written: re-run the run that made it")
    if "adapter_config" in metadata and (Path(directory) / ADAPTER_CONFIG).is_file():
        saved, now = json.loads(metadata["adapter_config"]), load_adapter_config(directory)
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k, "<absent>") != now.get(k, "<absent>"))
        if diff:
            def show(config):
                return ", ".join(f"{k}={config[k]!r}" if k in config else f"no {k}" for k in diff)
            raise AdapterLoadError(f"{Path(directory) / ADAPTER_CONFIG} says {show(now)} but {path} was trained with "
                                   f"{show(saved)}; restore the config (it changes what the weights compute) or re-run")
    return tensors


def method_config_of(adapter_config: dict) -> dict:
    """The part of an adapter config that `apply_method` takes."""
    return {k: v for k, v in adapter_config.items() if k not in NON_METHOD_KEYS}


def load_adapter(model: nn.Module, directory: str | Path) -> dict:
    """Copy the saved tensors into `model` (apply_method already called with the same config); strict.

    Returns the adapter config.
    """
    config = load_adapter_config(directory)
    saved = load_adapter_tensors(directory)   # first: damaged or edited files are named as such
    if config.get("name") in METHODS:  # an unknown name fails below, on the tensors that do not match
        try:
            METHODS[config["name"]].check_adapter_config(model, config, source=f"adapter in {directory}")
        except KeyError as e:
            raise AdapterLoadError(f"{Path(directory) / ADAPTER_CONFIG} lacks the option {e}") from None
    expected = trainable_tensors(model)
    missing, unexpected = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
    if missing or unexpected:
        raise AdapterLoadError(
            f"adapter in {directory} does not match the model's trainable parameters: "
            f"missing {len(missing)} {missing[:5]}, unexpected {len(unexpected)} {unexpected[:5]}; "
            f"was apply_method called with the adapter's config {method_config_of(config)}?")
    wrong = [f"{k}: saved {tuple(saved[k].shape)}, model {tuple(p.shape)}"
             for k, p in expected.items() if saved[k].shape != p.shape]
    if wrong:
        raise AdapterLoadError(f"adapter in {directory} has tensors of the wrong shape: {wrong[:5]}")
    with torch.no_grad():
        for k, p in expected.items():
            p.copy_(saved[k])
    return config


def init_from_adapter(model: nn.Module, directory: str | Path) -> list[str]:
    """Start from another run's adapter (the paper starts MRPC/RTE/STS-B LoRA from MNLI's): load its body
    tensors only, never the task head; every tensor must fit this model. Returns the loaded keys."""
    tensors = {k: v for k, v in load_adapter_tensors(directory).items() if not is_head_param(model, k)}
    params = dict(model.named_parameters())
    bad = [k for k, v in tensors.items() if k not in params or params[k].shape != v.shape]
    if bad:
        raise AdapterLoadError(f"method_init_from={str(directory)!r}: tensors that do not fit this model: {bad[:5]}")
    frozen = [k for k in tensors if not params[k].requires_grad]
    if frozen:  # they would change the base model, and this run's adapter would not hold them (review F31)
        raise AdapterLoadError(f"method_init_from={str(directory)!r}: {len(frozen)} tensors are frozen in this run "
                               f"(start from an adapter of the same method): {frozen[:5]}")
    model.load_state_dict(tensors, strict=False)
    return sorted(tensors)


def apply_adapter(model: nn.Module, directory: str | Path) -> MethodReport:
    """Apply the adapter's method to a fresh base model, then load its tensors."""
    report = apply_method(model, method_config_of(load_adapter_config(directory)))
    load_adapter(model, directory)
    return report
