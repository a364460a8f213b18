"""Find a run's LoRA factors and read them per (layer, target).

A RUN on the command line may be a run id (looked up under ``<results>/``), a run record's path,
or an adapter directory. Every analysis works on the same thing: the ``A`` [r, d_in] and ``B``
[d_out, r] of each adapted matrix, keyed by layer index and canonical target, read from the
adapter-only checkpoint whose tensor names follow the project's contract
(``<module path>.lora_A.<target>``, ``<module path>.lora_B.<target>``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import records

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])\.(?P<target>[^.]+)$")
_LAYER = re.compile(r"(?:^|\.)(?:layer|layers|h)\.(\d+)(?:\.|$)")


class AnalysisError(ValueError):
    """Input an analysis cannot use: a missing file, a run that is not LoRA, runs that do not match."""


@dataclass(frozen=True)
class LoraFactor:
    """One adapted matrix: ΔW = scale · B @ A."""
    layer: int
    target: str
    module: str           # module path in the adapted model, e.g. roberta.encoder.layer.3.attention.self.query
    A: torch.Tensor       # [r, d_in]
    B: torch.Tensor       # [d_out, r]

    @property
    def r(self) -> int:
        return self.A.shape[0]


@dataclass
class LoraRun:
    label: str                              # short name for file names and plot titles
    adapter_dir: Path
    config: dict                            # adapter_config.json
    record: dict | None                     # the run record, when one was found
    factors: dict[tuple[int, str], LoraFactor] = field(default_factory=dict)

    @property
    def r(self) -> int:
        return int(self.config["r"])

    @property
    def alpha(self) -> float:
        return float(self.config.get("alpha", self.r))

    @property
    def scale(self) -> float:
        """loralib's scaling alpha / r: ΔW = (alpha / r) B A."""
        return self.alpha / self.r

    @property
    def base_model(self) -> str | None:
        return self.config.get("base_model") or (self.record or {}).get("model")

    @property
    def layers(self) -> list[int]:
        return sorted({layer for layer, _ in self.factors})

    @property
    def targets(self) -> list[str]:
        return sorted({t for _, t in self.factors}, key=_target_order)

    def delta_w(self, layer: int, target: str) -> torch.Tensor:
        f = self.factors[(layer, target)]
        return self.scale * (f.B.double() @ f.A.double())


def _target_order(t: str) -> tuple[int, str]:
    order = ("q", "k", "v", "o")
    return (order.index(t) if t in order else len(order), t)


def method_name(record: dict) -> str | None:
    """A record's method name, whether stored as a name or as the method's config mapping."""
    method = record.get("method")
    return method.get("name") if isinstance(method, dict) else method


def layer_index(module_path: str) -> int:
    """The block index in a module path (``...layer.3...`` for encoders, ``...h.3...`` for GPT-2)."""
    m = _LAYER.search(module_path)
    if m is None:
        raise AnalysisError(f"cannot find a layer index ('.layer.N.' or '.h.N.') in module path {module_path!r}")
    return int(m.group(1))


def lora_factors(state: dict[str, torch.Tensor], source: str = "adapter") -> dict[tuple[int, str], LoraFactor]:
    """Pair every ``lora_A``/``lora_B`` tensor of an adapter state dict by (layer, target)."""
    parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        m = _LORA_KEY.match(key)
        if m:
            parts.setdefault((m["module"], m["target"]), {})[m["which"]] = tensor
    if not any("A" in p for p in parts.values()):
        raise AnalysisError(f"{source} has no LoRA tensors ('<module>.lora_A.<target>'); it is not a LoRA run. "
                            f"Its tensors: {sorted(state)[:6]}{' ...' if len(state) > 6 else ''}")
    factors: dict[tuple[int, str], LoraFactor] = {}
    for (module, target), ab in sorted(parts.items()):
        missing = [f"{module}.lora_{w}.{target}" for w in "AB" if w not in ab]
        if missing:
            raise AnalysisError(f"{source}: missing tensor(s) {missing}")
        A, B = ab["A"].detach().float(), ab["B"].detach().float()
        if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[1]:
            raise AnalysisError(f"{source}: {module} target {target!r} has lora_A {tuple(A.shape)} and lora_B "
                                f"{tuple(B.shape)}; expected [r, d_in] and [d_out, r]")
        key = (layer_index(module), target)
        if key in factors:
            raise AnalysisError(f"{source}: two modules adapt layer {key[0]} target {target!r}: "
                                f"{factors[key].module} and {module}")
        factors[key] = LoraFactor(key[0], target, module, A, B)
    return factors


def load_adapter_dir(adapter_dir: str | Path, label: str | None = None, record: dict | None = None) -> LoraRun:
    """Read ``adapter.safetensors`` + ``adapter_config.json`` into a LoraRun."""
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    weights, cfg_path = adapter_dir / ADAPTER_WEIGHTS, adapter_dir / ADAPTER_CONFIG
    missing = [str(p) for p in (weights, cfg_path) if not p.is_file()]
    if missing:
        raise AnalysisError(f"adapter directory {str(adapter_dir)!r} lacks {missing}")
    config = json.loads(cfg_path.read_text())
    method = config.get("name", "lora")
    if method != "lora":
        raise AnalysisError(f"{cfg_path} is a {method!r} run, not a LoRA run (method name 'lora')")
    factors = lora_factors(load_file(str(weights)), source=str(weights))
    if "r" not in config:
        config["r"] = next(iter(factors.values())).r
    ranks = {f.r for f in factors.values()}
    if ranks != {int(config["r"])}:
        raise AnalysisError(f"{adapter_dir}: adapter_config.json says r={config['r']} but the tensors have "
                            f"rank(s) {sorted(ranks)}")
    if label is None:
        label = adapter_dir.parent.name if adapter_dir.name == "adapter" else adapter_dir.name
    return LoraRun(label=label, adapter_dir=adapter_dir, config=config, record=record, factors=factors)


def _adapter_dir_of_record(record: dict, results_dir: Path) -> list[Path]:
    """Where a record's adapter may be: its ``adapter_dir`` (absolute, or relative to the working
    directory or to the results directory), then the default ``checkpoints/<run_id>/adapter``."""
    candidates = []
    if record.get("adapter_dir"):
        p = Path(record["adapter_dir"])
        candidates += [p] if p.is_absolute() else [p, results_dir / p]
    candidates.append(results_dir / "checkpoints" / str(record.get("run_id")) / "adapter")
    return candidates


def load_run(spec: str | Path, results_dir: str | Path = "results") -> LoraRun:
    """A run from a run id, a record path, or an adapter (or checkpoint) directory."""
    spec_path, results_dir = Path(spec), Path(results_dir)
    if spec_path.is_dir():
        if (spec_path / ADAPTER_WEIGHTS).exists() or (spec_path / ADAPTER_CONFIG).exists():
            return load_adapter_dir(spec_path)
        if (spec_path / "adapter").is_dir():
            return load_adapter_dir(spec_path / "adapter")
        raise AnalysisError(f"directory {str(spec_path)!r} holds no {ADAPTER_WEIGHTS} + {ADAPTER_CONFIG} "
                            f"(nor an 'adapter/' subdirectory with them)")
    if spec_path.suffix == ".json":
        record = records.read_record(spec_path)
        if record is None:
            raise AnalysisError(f"run record {str(spec_path)!r} is missing or not valid JSON")
        # a record lives at <results>/runs/<id>.json; a relative adapter_dir is relative to that <results>
        candidates = _adapter_dir_of_record(record, spec_path.resolve().parent.parent)
    else:
        record = records.read_record(records.record_path(results_dir, str(spec)))
        candidates = (_adapter_dir_of_record(record, results_dir) if record
                      else [results_dir / "checkpoints" / str(spec) / "adapter"])
    label = str((record or {}).get("run_id") or spec)
    if record and method_name(record) not in (None, "lora"):
        raise AnalysisError(f"run {label!r} is a {method_name(record)!r} run, not a LoRA run")
    for c in candidates:
        if c.is_dir():
            return load_adapter_dir(c, label=label, record=record)
    found = "" if record else f"no run record at {records.record_path(results_dir, str(spec))}; "
    raise AnalysisError(f"no adapter for run {str(spec)!r}: {found}no adapter directory at "
                        f"{[str(c) for c in candidates]}. A RUN is a run id (with --results DIR), a record "
                        f"path, or a directory with {ADAPTER_WEIGHTS} + {ADAPTER_CONFIG}")
