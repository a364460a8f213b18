"""Where a model's config and weights come from: a config JSON of `lora_repro/models/configs/` (or a path),
a hub id, a local checkpoint dir, or `package:<python package>/<subdir>`."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from ..paths import MODEL_CONFIGS_DIR


class ModelConfigError(ValueError):
    """A model config that names no usable source; the message names the key and value."""


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


# Hub checkpoints whose architecture config ships in `lora_repro/models/configs/` (the paper's models, by the
# ids conf/model/*.yaml use and their legacy unprefixed aliases): validation and planning read the shipped JSON,
# so they never touch the network for these.
SHIPPED_HUB_CONFIGS = {
    "FacebookAI/roberta-base": "roberta-base", "roberta-base": "roberta-base",
    "FacebookAI/roberta-large": "roberta-large", "roberta-large": "roberta-large",
    "microsoft/deberta-v2-xxlarge": "deberta-v2-xxlarge",
    "openai-community/gpt2-medium": "gpt2-medium", "gpt2-medium": "gpt2-medium",
    "openai-community/gpt2-large": "gpt2-large", "gpt2-large": "gpt2-large",
}


def shipped_config(pretrained) -> str | None:
    """The shipped architecture config name of a hub checkpoint (None: not one of the paper's models, or
    `pretrained` is a local dir that exists)."""
    if not isinstance(pretrained, str) or Path(pretrained).exists():
        return None
    return SHIPPED_HUB_CONFIGS.get(pretrained.rstrip("/"))


def arch_names() -> list[str]:
    """The architecture configs shipped in `lora_repro/models/configs/`."""
    return sorted(p.stem for p in MODEL_CONFIGS_DIR.glob("*.json"))


def arch_values(name: str | Path) -> dict:
    """The keys of an architecture config JSON: a name in `lora_repro/models/configs/`, a path, or
    `package:<pkg>/<file>` (a checkpoint's own config.json: its architecture with random weights)."""
    path = Path(resolve_source(str(name)))
    if path.suffix != ".json":
        path = MODEL_CONFIGS_DIR / f"{name}.json"
    if not path.is_file():
        raise ModelConfigError(f"model.arch_config={str(name)!r}: no such config file; known names: {arch_names()}")
    return json.loads(path.read_text())
