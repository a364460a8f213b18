"""Find a run's low-rank factors and read them per (layer, target).

A RUN on the command line may be a run id (looked up under ``<results>/``), a run record's path,
or an adapter directory. Every analysis works on the same thing: the ``A`` [r, d_in], ``B``
[d_out, r] and scale of each adapted matrix, keyed by layer index and canonical target. The adapter
directory is the one `lora_repro.methods.io.save_adapter` writes; which tensors are the factors, and
their scale, the run's method says (`Method.low_rank_factors`; LoRA's `<module>.lora_A.<target>`,
scale alpha/r). Methods without low-rank factors are refused with the names of those that have them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import records
from ..methods import METHODS, AdapterLoadError, capabilities, get_method, layer_of, methods_with
from ..methods.io import ADAPTER_CONFIG, ADAPTER_WEIGHTS, load_adapter_config, load_adapter_tensors

LOW_RANK = "low_rank_factors"  # the capability every analysis here needs


class AnalysisError(ValueError):
    """Input an analysis cannot use: a missing file, a run without low-rank factors, runs that do not match."""


@dataclass(frozen=True)
class LoraFactor:
    """One adapted matrix: ΔW = scale · B @ A."""
    layer: int
    target: str
    module: str           # module path in the adapted model, e.g. roberta.encoder.layer.3.attention.self.query
    A: torch.Tensor       # [r, d_in]
    B: torch.Tensor       # [d_out, r]
    scale: float = 1.0    # as the method's layer scales its update (LoRA: alpha / r)

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
    def method(self) -> str:
        return self.config["name"]

    @property
    def r(self) -> int:
        return self._one("rank", {f.r for f in self.factors.values()})

    @property
    def alpha(self) -> float | None:
        """The config's alpha, where the method has one (reported beside the scale)."""
        return None if self.config.get("alpha") is None else float(self.config["alpha"])

    @property
    def scale(self) -> float:
        """The scale of every ΔW = scale · B A (the method's own rule; LoRA: alpha / r)."""
        return self._one("scale", {f.scale for f in self.factors.values()})

    def _one(self, what: str, values: set):
        if len(values) != 1:
            raise AnalysisError(f"run {self.label!r} has more than one {what} across its matrices: {sorted(values)}")
        return next(iter(values))

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
        return f.scale * (f.B.double() @ f.A.double())


def _target_order(t: str) -> tuple[int, str]:
    order = ("q", "k", "v", "o")
    return (order.index(t) if t in order else len(order), t)


def has_low_rank_factors(method: str | None) -> bool:
    """True for a registered method whose adapters hold low-rank factors (what every analysis here reads)."""
    return method in METHODS and LOW_RANK in capabilities(method)


def require_low_rank(method: str | None, what: str) -> None:
    """AnalysisError naming `what`'s method and the methods that have low-rank factors."""
    if not has_low_rank_factors(method):
        raise AnalysisError(f"{what} is a {method!r} run, which has no low-rank factors to analyse; methods with "
                            f"low-rank factors: {', '.join(methods_with(LOW_RANK))}")


def layer_index(module_path: str) -> int:
    """The block index in a module path (``...layer.3...`` for encoders, ``...h.3...`` for GPT-2)."""
    layer = layer_of(module_path)
    if layer is None:
        raise AnalysisError(f"cannot find a layer index ('.layer.N.' or '.h.N.') in module path {module_path!r}")
    return layer


def factors_of(state: dict[str, torch.Tensor], config: dict, source: str = "adapter"
               ) -> dict[tuple[int, str], LoraFactor]:
    """The adapter's factors by (layer, target), as its method (``config["name"]``) reads them."""
    method = config.get("name")
    require_low_rank(method, source)
    try:
        factors = get_method(method).low_rank_factors(state, config)
    except AdapterLoadError as e:
        raise AnalysisError(f"{source}: {e}") from e
    return {(layer, target): LoraFactor(layer, target, f.module, f.A, f.B, f.scale)
            for (layer, target), f in factors.items()}


def load_adapter_dir(adapter_dir: str | Path, label: str | None = None, record: dict | None = None) -> LoraRun:
    """Read ``adapter.safetensors`` + ``adapter_config.json`` into a LoraRun."""
    adapter_dir = Path(adapter_dir)
    weights, cfg_path = adapter_dir / ADAPTER_WEIGHTS, adapter_dir / ADAPTER_CONFIG
    missing = [str(p) for p in (weights, cfg_path) if not p.is_file()]
    if missing:
        raise AnalysisError(f"adapter directory {str(adapter_dir)!r} lacks {missing}")
    try:
        config = load_adapter_config(adapter_dir)
        require_low_rank(config.get("name"), str(cfg_path))
        tensors = load_adapter_tensors(adapter_dir)
    except AdapterLoadError as e:  # a damaged or edited adapter: named, not a raw safetensors traceback
        raise AnalysisError(str(e)) from e
    factors = factors_of(tensors, config, source=str(weights))
    if label is None:
        label = adapter_dir.parent.name if adapter_dir.name.split(".")[0] == "adapter" else adapter_dir.name
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


SELECT_KEYS = ("model", "task", "method", "seed", "r")


def _selected_value(rec: Mapping, key: str):
    if key == "model":
        return records.model_name(rec)
    if key == "method":
        return records.method_name(rec)
    if key == "r":
        return records.method_options(rec).get("r")
    return rec.get(key)


def select_run(spec: str, results_dir: str | Path) -> Path:
    """The record path of the one finished run under `results_dir` that `spec` = `key=value[,key=value...]`
    (keys: model, task, method, seed, r) selects, e.g. `model=minilm,r=64`: a run named without its id."""
    want = {}
    for part in str(spec).split(","):
        key, sep, value = (x.strip() for x in part.partition("="))
        if not sep or key not in SELECT_KEYS:
            raise AnalysisError(f"run selector {spec!r}: {part!r} is not key=value with a key of {list(SELECT_KEYS)}")
        want[key] = value
    good, _ = records.load_records(results_dir)
    hits = sorted((rec for rec in good if records.is_finished(rec)
                   and all(str(_selected_value(rec, k)) == v for k, v in want.items())), key=lambda r: r["run_id"])
    if len(hits) != 1:
        seen = "; ".join(f"{r['run_id']} ({', '.join(f'{k}={_selected_value(r, k)}' for k in SELECT_KEYS)})"
                         for r in hits[:5])
        raise AnalysisError(f"run selector {spec!r} matches {len(hits)} finished runs in "
                            f"{records.runs_dir(results_dir)}{': ' + seen if seen else ''}; it must match exactly one "
                            "(add keys)")
    return records.record_path(results_dir, str(hits[0]["run_id"]))


def load_run(spec: str | Path, results_dir: str | Path = "results") -> LoraRun:
    """A run from a run id, a record path, an adapter (or checkpoint) directory, or a selector of one finished
    run under `results_dir` (`model=minilm,r=8`, see `select_run`; the selector becomes the run's label)."""
    spec_path, results_dir = Path(spec), Path(results_dir)
    selector = str(spec) if "=" in str(spec) and not spec_path.exists() else None
    if selector:
        spec_path = select_run(selector, results_dir)
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
    label = selector or str((record or {}).get("run_id") or spec)
    if record and records.method_name(record) is not None:
        require_low_rank(records.method_name(record), f"run {label!r}")
    for c in candidates:
        if c.is_dir():
            return load_adapter_dir(c, label=label, record=record)
    found = "" if record else f"no run record at {records.record_path(results_dir, str(spec))}; "
    raise AnalysisError(f"no adapter for run {str(spec)!r}: {found}no adapter directory at "
                        f"{[str(c) for c in candidates]}. A RUN is a run id (with --results DIR), a record "
                        f"path, a directory with {ADAPTER_WEIGHTS} + {ADAPTER_CONFIG}, or key=value,... of one run")
