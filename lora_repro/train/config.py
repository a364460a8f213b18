"""The trainer's options, their defaults and their checks: one home (conf/trainer/default.yaml mirrors it).

`fit` reads its options through `TrainerConfig.from_mapping`, so a caller without the YAML (bench, tests, a
notebook) trains with exactly the defaults an app run gets; `check` is what `lora-repro validate` and every
run report before any compute. A new trainer option is a field here plus its line in
conf/trainer/default.yaml (a test holds the two equal).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..checks import Problems, is_int, is_positive_int, is_real
from .precision import TRAINER_PRECISIONS

EVAL_EPOCHS = ("all", "last")
# Options a config may add (`+trainer.global_batch_size=...`) but conf/trainer/default.yaml leaves out:
# adding a key to the default YAML would change every run's identity.
OPTIONAL_KEYS = ("global_batch_size",)


@dataclass(frozen=True)
class TrainerConfig:
    lr: float = 5.0e-4
    epochs: int = 3
    batch_size: int = 16                 # per process; global = batch_size x grad_accum x WORLD_SIZE
    eval_batch_size: int | None = 64     # null: batch_size
    grad_accum: int = 1
    warmup_ratio: float = 0.06           # linear warmup then linear decay to 0
    warmup_steps: int = 0                # > 0 replaces warmup_ratio
    weight_decay: float = 0.01           # not on biases and LayerNorm weights
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1.0e-6
    max_grad_norm: float | None = 1.0    # null or 0: no clipping
    label_smoothing: float = 0.0
    eval_epochs: str = "all"             # all: evaluate every epoch, keep the best; last: the final epoch only
    precision: str = "auto"              # auto | fp32 | bf16 | fp16 (train/precision.py)
    save_every_steps: int = 0            # 0: checkpoint after every epoch only
    log_every_steps: int = 50
    global_batch_size: int | None = None  # optional: the paper's batch, checked against batch x accum x world

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> TrainerConfig:
        """The options of a config mapping, defaults for what it leaves out or sets to null (unknown keys are
        an error: `check` names them)."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise ValueError(f"unknown trainer option(s) {unknown}; valid: {cls.keys()}")
        defaults = cls()
        given = {k: v for k, v in values.items() if v is not None or k in ("max_grad_norm", "eval_batch_size",
                                                                           "global_batch_size")}
        if given.get("adam_betas") is not None:
            given["adam_betas"] = tuple(given["adam_betas"])
        return dataclasses.replace(defaults, **given)

    @property
    def effective_eval_batch_size(self) -> int:
        return self.eval_batch_size or self.batch_size

    @classmethod
    def check(cls, t: Mapping, p: Problems) -> None:
        """Append every problem of the trainer options `t` (a config mapping) to `p`."""
        unknown = sorted(set(t) - set(cls.keys()))
        p.check(not unknown, "trainer", unknown, f"known options only: {', '.join(cls.keys())}")
        p.check(is_real(t.get("lr")) and t["lr"] > 0, "trainer.lr", t.get("lr"), "a finite number > 0")
        for key in ("epochs", "batch_size"):
            p.check(is_positive_int(t.get(key)), f"trainer.{key}", t.get(key), "an integer > 0")
        for key in ("grad_accum", "eval_batch_size"):
            if t.get(key) is not None:
                p.check(is_positive_int(t[key]), f"trainer.{key}", t[key], "an integer > 0")
        p.check(t.get("precision", "auto") in TRAINER_PRECISIONS, "trainer.precision", t.get("precision"),
                str(list(TRAINER_PRECISIONS)))
        wr = t.get("warmup_ratio", 0.0) or 0.0
        p.check(is_real(wr) and 0 <= wr < 1, "trainer.warmup_ratio", wr, "a number in [0, 1)")
        ws = t.get("warmup_steps", 0) or 0
        p.check(is_int(ws) and ws >= 0, "trainer.warmup_steps", ws, "an integer >= 0 (0: use warmup_ratio)")
        p.check(t.get("eval_epochs", "all") in EVAL_EPOCHS, "trainer.eval_epochs", t.get("eval_epochs"),
                "'all' (evaluate every epoch, keep the best) or 'last'")
        ls = t.get("label_smoothing", 0.0) or 0.0
        p.check(is_real(ls) and 0 <= ls < 1, "trainer.label_smoothing", ls, "a number in [0, 1)")
        mg = t.get("max_grad_norm")
        p.check(mg is None or (is_real(mg) and mg >= 0), "trainer.max_grad_norm", mg,
                "null/0 (no clipping) or a finite number > 0")
        wd = t.get("weight_decay", 0.0) or 0.0
        p.check(is_real(wd) and wd >= 0, "trainer.weight_decay", wd, "a finite number >= 0")
        betas = t.get("adam_betas", [0.9, 0.999])
        p.check(isinstance(betas, (list, tuple)) and len(betas) == 2
                and all(is_real(b) and 0 <= b < 1 for b in betas), "trainer.adam_betas", betas,
                "two numbers in [0, 1)")
        eps = t.get("adam_eps", 1e-6)
        p.check(is_real(eps) and eps > 0, "trainer.adam_eps", eps, "a finite number > 0")
        if t.get("save_every_steps") is not None:
            p.check(is_int(t["save_every_steps"]) and t["save_every_steps"] >= 0, "trainer.save_every_steps",
                    t["save_every_steps"], "an integer >= 0 (0: checkpoint after every epoch only)")
        if t.get("log_every_steps") is not None:
            p.check(is_positive_int(t["log_every_steps"]), "trainer.log_every_steps", t["log_every_steps"],
                    "an integer > 0 (W&B gets the loss every that many steps)")
        _check_global_batch(t, p)


def world_size() -> int:
    """Processes of this run (torchrun's WORLD_SIZE; 1 without it)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _check_global_batch(t: Mapping, p: Problems) -> None:
    """trainer.batch_size is per process; an optional trainer.global_batch_size (the paper's batch) must
    equal batch_size x grad_accum x WORLD_SIZE, so a run on another number of GPUs cannot silently
    train with another effective batch."""
    g = t.get("global_batch_size")
    if g is None or not is_positive_int(t.get("batch_size")):
        return
    if not p.check(is_positive_int(g), "trainer.global_batch_size", g, "null or an integer > 0"):
        return
    accum = t.get("grad_accum") or 1
    world = world_size()
    if not is_positive_int(accum) or t["batch_size"] * accum * world == g:
        return
    hint = (f"per process {g // world}, e.g. trainer.batch_size={g // world} trainer.grad_accum=1"
            if g % world == 0 else f"a multiple of WORLD_SIZE={world}")
    p.append(f"trainer.global_batch_size={g} is not trainer.batch_size={t['batch_size']} x "
             f"trainer.grad_accum={accum} x WORLD_SIZE={world} = {t['batch_size'] * accum * world}; "
             f"allowed: {hint}")
