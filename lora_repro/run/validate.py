"""Everything a run can check before any compute, all problems at once (`ConfigError` lists them).

Each layer checks what it owns: the trainer options (`train.config.TrainerConfig.check`), the task and its
data_dir (`Task.check_data_dir`), the model's config (`models.model_config`, no weights; the paper's models
from their shipped configs, so no network), that hub files are cached or reachable (`run.hub`), the method's
options against the architecture built on the meta device (`Method.validate`), and an adapter to start
from. A run's identity is `records.run_identity` of the resolved config.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import records
from ..checks import ConfigError, Problems, is_int, is_positive_int

RunConfigError = ConfigError   # the name callers of main @ 68f5b40 catch


@dataclass
class ValidatedRun:
    config: dict          # the resolved config as plain data (what the record stores)
    run_id: str
    task: Any             # the Task instance
    method_cfg: dict      # {"name": ..., **every option}
    model_config: Any     # the architecture config (no weights)
    decoder: bool
    max_length: int


def plain_config(cfg: Any) -> dict:
    """A resolved config (DictConfig or mapping) as plain data."""
    if isinstance(cfg, Mapping) and not hasattr(cfg, "_metadata"):
        return {k: plain_config(v) if isinstance(v, Mapping) else v for k, v in cfg.items()}
    from omegaconf import OmegaConf
    return OmegaConf.to_container(cfg, resolve=True)


def run_id_of(config: Mapping) -> str:
    """The identity of a resolved config (`records.run_identity`; the one rule every caller uses)."""
    return records.run_identity(config)


def check_selection_split(config: Mapping, task: Any, p: Problems) -> None:
    """No model selection on a test split unless the config says the paper did it, and why: with
    eval_epochs=all a run keeps its best epoch on the task's main eval split, and for E2E and SAMSum that split
    is the test set. The reason goes in the top-level key SELECT_ON_TEST_KEY (not part of a run's identity)."""
    trainer = config.get("trainer") or {}
    epochs = trainer.get("epochs")
    if trainer.get("eval_epochs", "all") != "all" or not (isinstance(epochs, int) and epochs > 1):
        return
    if not str(task.main_split).startswith("test"):
        return
    reason = config.get(records.SELECT_ON_TEST_KEY)
    p.check(isinstance(reason, str) and reason.strip() != "", "trainer.eval_epochs", "all",
            f"'last' for task={task.name!r}: 'all' keeps the best of {epochs} epochs on its "
            f"{task.main_split!r} split, i.e. selects the model on a test split (the LoRA authors decode the final "
            f"checkpoint); if the paper did select there, say so with +{records.SELECT_ON_TEST_KEY}='<the paper's "
            "words and where>'")


def _yaml_keys(path: Path) -> set[str]:
    from omegaconf import OmegaConf
    return {k for k in OmegaConf.load(path) if k not in ("defaults", "hydra")}


def check_known_keys(config: Mapping, p: Problems) -> None:
    """A typo added with `+` (`+sede=3`, `+task.max_len=64`) must not train seed 0 under a new identity: the
    top-level keys are those of conf/config.yaml (its groups and its own keys) and the run-control keys outside
    the identity (`records.IDENTITY_EXCLUDED_KEYS`, e.g. `+stop_after_steps`); the task keys those of the
    conf/task/ files; trainer and method keys are checked by their own layers."""
    from .. import paths

    top = _yaml_keys(paths.CONF_DIR / "config.yaml") | {"model", "task", "method", "trainer", "logger"} \
        | set(records.IDENTITY_EXCLUDED_KEYS)
    unknown = sorted(set(config) - top)
    p.check(not unknown, "config", unknown, f"known top-level keys only: {', '.join(sorted(top))}")
    task_keys = {"name"}.union(*(_yaml_keys(f) for f in sorted((paths.CONF_DIR / "task").rglob("*.yaml"))))
    unknown = sorted(set(config.get("task") or {}) - task_keys)
    p.check(not unknown, "task", unknown, f"known task options only: {', '.join(sorted(task_keys))}")


def validate(cfg: Any) -> ValidatedRun:
    """Check a resolved config before any compute; raise ConfigError listing every problem found
    (checks that need a valid task or model are skipped when those are already wrong)."""
    from ..methods import MethodConfigError, resolve_config
    from ..methods.arch import UnsupportedModelError, get_arch
    from ..methods.io import ADAPTER_WEIGHTS
    from ..models import ModelConfigError, is_decoder_only, max_positions, meta_model, model_config, shipped_config
    from ..tasks import TaskConfigError, get_task
    from ..train.config import TrainerConfig
    from .hub import unavailable, unavailable_problem

    config = plain_config(cfg)
    p = Problems()
    for key in ("model", "task", "method", "trainer"):
        p.check(isinstance(config.get(key), Mapping), key, config.get(key), "a config group (see conf/)")
    p.raise_any()
    seed = config.get("seed")
    p.check(is_int(seed) and 0 <= seed < 2**32, "seed", seed, "an integer in [0, 2**32) (NumPy's seed range)")
    check_known_keys(config, p)
    TrainerConfig.check(config["trainer"], p)
    t = config["task"]
    try:
        task = get_task(t.get("name"))
    except TaskConfigError as e:
        p.append(f"task.name: {e}")
        task = None
    if task is not None:
        task.check_data_dir(t.get("data_dir"), p)
        check_selection_split(config, task, p)
    p.check(is_positive_int(t.get("max_length")), "task.max_length", t.get("max_length"), "an integer > 0")
    for key in ("max_train_samples", "max_eval_samples"):
        if t.get(key) is not None:
            p.check(is_positive_int(t[key]), f"task.{key}", t[key], "null or an integer > 0")
    from ..train.evaluate import GENERATION_KEYS
    generation = t.get("generation") or {}
    if p.check(isinstance(generation, Mapping), "task.generation", generation, "a mapping of generation options"):
        for key in generation:
            p.check(key in GENERATION_KEYS, f"task.generation.{key}", generation[key],
                    f"a known generation option: {', '.join(GENERATION_KEYS)}")
    missing, unreachable = unavailable(config)   # hub files neither cached nor downloadable: one line, no retries
    if missing:
        p.append(unavailable_problem(missing, unreachable, config))
    mconf = None
    try:
        if not any(n.kind == "model" for n in missing) or shipped_config(config["model"].get("pretrained")):
            mconf = model_config(config["model"], shipped=True)   # the paper's models: shipped config, no network
    except ModelConfigError as e:
        p.append(str(e))
    except OSError as e:  # a hub id without network / cache, or a local dir without config.json
        p.append(f"model.pretrained={config['model'].get('pretrained')!r}: cannot load its config "
                 f"(no network and not in the Hugging Face cache, or not a checkpoint dir): {e}")
    try:
        method_cls, options = resolve_config(config["method"])
    except MethodConfigError as e:
        p.append(f"method: {e}")
        method_cls = None
    if mconf is None or task is None:
        p.raise_any()
        raise AssertionError("unreachable: a missing model or task is always a problem")
    decoder = is_decoder_only(mconf)
    model_name = config["model"].get("name")
    if not decoder and task.kind not in ("classification", "regression"):
        p.append(f"task={task.name!r} is a {task.kind} task: it needs a decoder-only model "
                 f"(e.g. model=gpt2-medium), not model={model_name!r}")
    if decoder and task.kind != "generation":
        from ..tasks import TASKS
        generation = ", ".join(sorted(n for n, c in TASKS.items() if c.kind == "generation"))
        p.append(f"task={task.name!r} is a {task.kind} task: it needs an encoder model "
                 f"(e.g. model=roberta-base), not the decoder-only model={model_name!r}; "
                 f"GPT-2 takes generation tasks ({generation})")
    limit = max_positions(mconf)
    if limit and is_positive_int(t.get("max_length")):
        p.check(t["max_length"] <= limit, "task.max_length", t["max_length"],
                f"at most {limit}, the positions model={model_name!r} has")
    if method_cls is not None:
        try:
            model = meta_model(mconf, task)
            get_arch(model)
            method_cls().validate(model, options)
        except (MethodConfigError, UnsupportedModelError) as e:
            p.extend(f"method: {line}" for line in str(e).splitlines())   # a method may list several
    init_from = config.get("method_init_from")
    if init_from is not None:
        p.check(Path(init_from, ADAPTER_WEIGHTS).is_file(), "method_init_from", init_from,
                f"an adapter directory holding {ADAPTER_WEIGHTS} (e.g. <results>/checkpoints/<run_id>/adapter)")
    p.raise_any()
    return ValidatedRun(config=config, run_id=run_id_of(config), task=task,
                        method_cfg={"name": method_cls.name, **options}, model_config=mconf, decoder=decoder,
                        max_length=t["max_length"])
