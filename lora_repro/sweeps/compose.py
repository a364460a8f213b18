"""Sweep helpers: expand a preset's ``hydra.sweeper.params`` into jobs, compose each job's config
with Hydra's compose API, and give each job the run identity the train app will give it.

Also the ``init_from_run`` resolver that starts a run from another run's adapter (the paper starts
LoRA on MRPC/RTE/STS-B from the MNLI LoRA adapter of the same seed):

    method_init_from: ${init_from_run:'+experiment/table2=roberta-base_lora/mnli'}

resolves to ``<results_dir>/checkpoints/<run_id>/adapter``, where ``run_id`` is the identity of the job
whose overrides are *this* job's overrides with the given ones put in place (same key replaced,
otherwise appended). So the source is found by identity, not by path conventions or timestamps. The
train app must call ``register_resolvers()`` before Hydra composes (import time of the app module).
The source run must have finished before the dependent run starts: the table2 preset is split into two
stages (``table2`` then ``table2_from_mnli``) that `make reproduce-table2` runs in that order.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import paths, records

DEFAULT_CONFIG_DIR = paths.CONF_DIR
CONFIG_NAME = "config"

# The job being composed outside a Hydra app (planner, tests): (config_dir, config_name, overrides).
_JOB_CONTEXT: list[tuple[str, str, list[str]]] = []
_SOURCE_CACHE: dict[tuple, dict] = {}   # source job -> its resolved config (many jobs share one MNLI source)
_COMPOSED: dict[tuple, Any] = {}        # (config dir, name, config choices) -> composed config (fast_resolved_config)


class SweepError(ValueError):
    """A preset or override set that cannot be expanded/composed; the message says which and why."""


def override_key(override: str) -> str:
    """``+experiment/table2=x`` -> ``experiment/table2``; ``~a`` -> ``a``."""
    return override.split("=", 1)[0].lstrip("+~")


def replace_overrides(overrides: Sequence[str], replacements: Sequence[str]) -> list[str]:
    """``overrides`` with each replacement put in place of the override with the same key (or appended)."""
    out = list(overrides)
    for rep in replacements:
        key = override_key(rep)
        hits = [i for i, o in enumerate(out) if override_key(o) == key]
        if hits:
            out[hits[0]] = rep
            for i in reversed(hits[1:]):
                del out[i]
        else:
            out.append(rep)
    return out


def run_id_of(config: Mapping) -> str:
    """The identity the train app gives a resolved config."""
    return records.run_identity(config)


@contextlib.contextmanager
def hydra_context(config_dir: str | os.PathLike | None = None) -> Iterator[None]:
    """Initialise Hydra once for many compositions (re-initialising per job costs ~0.5 s)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_dir(config_dir=str(Path(config_dir or DEFAULT_CONFIG_DIR).resolve()), version_base="1.3"):
        yield


def compose(overrides: Sequence[str], config_dir: str | os.PathLike | None = None,
            config_name: str = CONFIG_NAME, return_hydra_config: bool = False):
    """The composed config of one job (Hydra's compose API; the job's overrides as on the command line).
    Inside a running app (or a ``hydra_context``) the already initialised config search path is used."""
    from hydra import compose as hydra_compose

    register_resolvers()
    with hydra_context(config_dir):
        return hydra_compose(config_name=config_name, overrides=list(overrides),
                             return_hydra_config=return_hydra_config)


@contextlib.contextmanager
def job_context(overrides: Sequence[str], config_dir: str | os.PathLike | None = None,
                config_name: str = CONFIG_NAME) -> Iterator[None]:
    """Resolve ``init_from_run`` for a job composed outside the app (the planner does this)."""
    _JOB_CONTEXT.append((str(Path(config_dir or DEFAULT_CONFIG_DIR).resolve()), config_name, list(overrides)))
    try:
        yield
    finally:
        _JOB_CONTEXT.pop()


def resolved_config(overrides: Sequence[str], config_dir: str | os.PathLike | None = None,
                    config_name: str = CONFIG_NAME) -> dict:
    """The job's config as plain data with every interpolation resolved (what its record stores)."""
    from omegaconf import OmegaConf

    cfg = compose(overrides, config_dir, config_name)
    with job_context(overrides, config_dir, config_name):
        return OmegaConf.to_container(cfg, resolve=True)


def _current_job() -> tuple[str | None, str, list[str]]:
    if _JOB_CONTEXT:
        return _JOB_CONTEXT[-1]
    from hydra.core.hydra_config import HydraConfig
    if not HydraConfig.initialized():
        raise SweepError("init_from_run needs the job's overrides: call it inside the Hydra app, or compose "
                         "with lora_repro.sweeps.compose.resolved_config(overrides)")
    hc = HydraConfig.get()
    config_dir = next((s.path for s in hc.runtime.config_sources if s.provider == "main"), None)
    return config_dir, hc.job.config_name, list(hc.overrides.task)


def init_from_run(*replacements: str) -> str:
    """The adapter dir of the run whose overrides are this job's with ``replacements`` put in place."""
    config_dir, config_name, overrides = _current_job()
    source = replace_overrides(overrides, replacements)
    if source == list(overrides):
        raise SweepError(f"init_from_run{replacements}: the source run would be this run itself")
    key = (config_dir, config_name, tuple(source))
    if key not in _SOURCE_CACHE:
        _SOURCE_CACHE[key] = fast_resolved_config(source, config_dir, config_name)
    config = _SOURCE_CACHE[key]
    return str(paths.adapter_dir(config.get("results_dir") or paths.DEFAULT_RESULTS, run_id_of(config)))


# How a printed batch size is read (``batch_reading``, a top-level key; absent = "scripts"). The paper does not
# say whether Tables 9/10's batch is per GPU or global; the authors' scripts pass it as
# per_device_train_batch_size on 8 GPUs (2 for RoBERTa-base CoLA), and those runs produced the paper's numbers.
BATCH_READINGS = {"scripts": "per-GPU batch x the authors' GPUs (what produced the paper's numbers)",
                  "paper": "the printed batch as the global batch (one process)"}


def authors_batch(per_gpu: int, gpus: int, *, _root_) -> int:
    """The global batch of a Table 2 cell whose paper batch is ``per_gpu`` and whose authors' script ran on
    ``gpus`` GPUs: ``per_gpu x gpus`` under ``batch_reading=scripts`` (the default), ``per_gpu`` under ``paper``."""
    from omegaconf import OmegaConf

    reading = OmegaConf.select(_root_, "batch_reading", default=None) or "scripts"
    if reading not in BATCH_READINGS:
        raise SweepError(f"batch_reading={reading!r}: valid readings are "
                         + "; ".join(f"{k} ({v})" for k, v in BATCH_READINGS.items()))
    return int(per_gpu) * (int(gpus) if reading == "scripts" else 1)


def register_resolvers() -> None:
    """Register ``init_from_run`` and ``authors_batch`` with OmegaConf (idempotent)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("init_from_run"):
        OmegaConf.register_new_resolver("init_from_run", init_from_run)
    if not OmegaConf.has_resolver("authors_batch"):
        OmegaConf.register_new_resolver("authors_batch", authors_batch)


# ------------------------------------------------------------------------------------------- jobs
def expand_sweep(params: Mapping[str, Any], arguments: Sequence[str] = ()) -> list[list[str]]:
    """One override list per job, exactly as Hydra's basic sweeper builds them: the preset's
    ``hydra.sweeper.params`` then the command line's overrides (a later key replaces an earlier one in
    place, so the command line narrows or widens the preset's sweep), cartesian product in that order."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [f"{k}={' '.join(str(v).split())}" for k, v in params.items()] + list(arguments)
    hydra = GlobalHydra.instance()   # glob(...) of a config group lists the group's options through it
    loader = hydra.config_loader() if hydra.is_initialized() else None
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(lines)
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def sweeper_params(cfg) -> dict:
    """A composed config's ``hydra.sweeper.params`` as plain data (unresolved), {} when it has none."""
    from omegaconf import OmegaConf

    params = OmegaConf.select(cfg, "hydra.sweeper.params")
    return OmegaConf.to_container(params, resolve=False) if params else {}


def fixed_overrides(arguments: Sequence[str]) -> list[str]:
    """The overrides that sweep nothing, as Hydra's own parser sees them: `a=1,2`, `seed=range(3)`,
    `choice(...)`, `glob(...)` and `x=[1,2]`... are told apart exactly as `train.py -m` tells them apart
    (a list value is one value; only sweeps are dropped). A malformed override is a SweepError naming it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    fixed = []
    for text in arguments:
        try:
            (override,) = parser.parse_overrides([text])
        except OverrideParseException as e:
            raise SweepError(f"cannot parse override {text!r}: {e}") from e
        if not override.is_sweep_override():
            fixed.append(text)
    return fixed


def sweep_overrides(arguments: Sequence[str], config_dir: str | os.PathLike | None = None) -> list[list[str]]:
    """The override list of every job ``train.py -m ARGUMENTS`` launches: the preset's sweeper params (read by
    composing the arguments that sweep nothing) expanded with the command line's, as Hydra's basic sweeper does.
    The one expansion of a sweep: `preset_jobs`, `lora-repro validate` and `lora-repro plan` use it."""
    fixed = fixed_overrides(arguments)
    try:
        hcfg = compose(fixed, config_dir, return_hydra_config=True)
    except Exception as e:  # noqa: BLE001 - Hydra raises several types; name the overrides in one message
        raise SweepError(f"cannot compose {' '.join(arguments)}: {e}") from e
    return expand_sweep(sweeper_params(hcfg), arguments)


@dataclass
class Job:
    overrides: list[str]
    config: dict
    run_id: str
    results_dir: str

    @property
    def status(self) -> str | None:
        """"finished", "failed" (its record says so; the sweep re-runs it) or None (never ran)."""
        rec = records.read_record(paths.record_path(self.results_dir, self.run_id))
        return rec.get("status") if rec else None

    @property
    def finished(self) -> bool:
        return self.status == records.STATUS_FINISHED


def preset_jobs(experiment: str, extra: Sequence[str] = (), config_dir: str | os.PathLike | None = None) -> list[Job]:
    """Every job ``train.py -m +experiment=<experiment> <extra>`` would launch, composed and identified."""
    with hydra_context(config_dir):
        return _preset_jobs(experiment, list(extra), config_dir)


def _preset_jobs(experiment: str, extra: list[str], config_dir) -> list[Job]:
    from ..train.progress import bar

    jobs = []
    todo = sweep_overrides([f"+experiment={experiment}", *extra], config_dir)
    shown = bar(len(todo), f"composing +experiment={experiment}", unit="job")   # one composition per cell
    for overrides in todo:
        try:
            config = fast_resolved_config(overrides, config_dir)
        except Exception as e:  # noqa: BLE001
            raise SweepError(f"cannot compose job {' '.join(overrides)}: {type(e).__name__}: {e}") from e
        jobs.append(Job(overrides, config, run_id_of(config), str(config.get("results_dir") or paths.DEFAULT_RESULTS)))
        shown.update(1)
    shown.close()
    return jobs


def is_value_override(override: str, config_dir: str | os.PathLike | None = None) -> bool:
    """Does ``override`` set a value (``seed=3``, ``trainer.lr=1e-4``, ``+x=1``) rather than choose a config
    (``model=gpt2-medium``, ``+experiment/table2=...``, anything under ``hydra``)? A config group is a folder
    of the config dir."""
    key = override_key(override)
    if key == "hydra" or key.startswith(("hydra.", "hydra/")):
        return False
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():   # Hydra's own answer, on its search path (plugins' dirs too)
        return not GlobalHydra.instance().config_loader().repository.group_exists(key)  # type: ignore[attr-defined]
    return not (Path(config_dir or DEFAULT_CONFIG_DIR) / key).is_dir()


def fast_resolved_config(overrides: Sequence[str], config_dir: str | os.PathLike | None = None,
                         config_name: str = CONFIG_NAME) -> dict:
    """`resolved_config`, composing once per distinct set of config choices. Why: a preset's jobs differ
    mostly in value overrides (seed=1..5), and one Hydra composition costs ~0.2-0.3 s (it re-reads every YAML
    file), so the 560 jobs of Table 2 took minutes. Hydra composes the defaults list first and applies value
    overrides to the merged config afterwards, in order; this does the same with Hydra's own override code
    (tests/sweeps/test_compose.py holds the result equal to a full composition; tools/plan_speed.py times both)."""
    import copy

    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    with hydra_context(config_dir):
        structural = tuple(o for o in overrides if not is_value_override(o, config_dir))
        values = [o for o in overrides if is_value_override(o, config_dir)]
        key = (str(Path(config_dir or DEFAULT_CONFIG_DIR).resolve()), config_name, structural)
        if key not in _COMPOSED:
            _COMPOSED[key] = compose(list(structural), config_dir, config_name)
    cfg = copy.deepcopy(_COMPOSED[key])
    ConfigLoaderImpl._apply_overrides_to_config(OverridesParser.create().parse_overrides(values), cfg)
    register_resolvers()
    with job_context(overrides, config_dir, config_name):
        return OmegaConf.to_container(cfg, resolve=True)
