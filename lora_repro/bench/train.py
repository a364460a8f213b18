"""Training-step throughput and peak memory of each method on one model shape.

One step = forward, backward and optimizer update, with the fast paths of `lora_repro.train.precision` and
`.optim` switched by `FastPaths`. Every method gets a fresh model from the same seed; the timed steps follow
untimed warmup steps (allocator, cuDNN/cuBLAS heuristics, compile); tokens/s = batch * seq / median step time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from ..train.measure import PeakMemory
from ..train.optim import make_optimizer
from ..train.precision import autocast, prepare_model_for_training
from .measure import released, summarize, time_calls
from .methods import MethodSpec, apply_spec, trainable_and_total
from .models import build_model, random_batch


@dataclass(frozen=True)
class FastPaths:
    """Each switch is one fast path; `ablations()` turns them off one at a time to show what each is worth."""
    frozen_low_precision: bool = True   # frozen weights stored in bf16 (bf16 runs only)
    optimizer: str = "auto"             # AdamW impl: auto (fused on CUDA, foreach on CPU) | fused | foreach | loop
    attention: str = "sdpa"             # sdpa | eager
    compile: bool = False               # torch.compile the model

    def ablations(self, with_compile: bool = False) -> dict[str, FastPaths]:
        """all_on, then each fast path off in turn; torch.compile (off by default) switched the other way."""
        out = {"all_on": self,
               "no_frozen_low_precision": replace(self, frozen_low_precision=False),
               "optimizer_loop": replace(self, optimizer="loop"),
               "eager_attention": replace(self, attention="eager")}
        if with_compile:
            out["compile_on" if not self.compile else "compile_off"] = replace(self, compile=not self.compile)
        return out


@dataclass(frozen=True)
class TrainSetting:
    model: str
    batch: int
    seq: int
    precision: str = "bf16"
    warmup: int = 3
    steps: int = 10
    lr: float = 1e-4
    tiny: bool = False
    seed: int = 0


def measure_train(setting: TrainSetting, spec: MethodSpec, fast: FastPaths, device: torch.device) -> dict:
    """One measurement: the fields of a `kind=train` JSON line (see report.py)."""
    with released(device):
        model = build_model(setting.model, setting.tiny, device, setting.seed, fast.attention)
        model, method_config = apply_spec(model, spec)
        model = prepare_model_for_training(model, setting.precision, fast.frozen_low_precision)
        model.train()
        optimizer = make_optimizer(model, lr=setting.lr, weight_decay=0.01, impl=fast.optimizer)
        runner = torch.compile(model) if fast.compile else model  # parameters are shared with `model`
        batch = random_batch(model, setting.batch, setting.seq, device, setting.seed)
        trainable, total = trainable_and_total(model)

        # bound as defaults (not closed over), so `del step, ...` below drops every reference to them before
        # released() cleans up
        def step(runner=runner, batch=batch, optimizer=optimizer):
            with autocast(device, setting.precision):
                loss = runner(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss

        with PeakMemory(device) as peak:
            times = time_calls(step, device, setting.warmup, setting.steps)
        loss = float(step().detach())
        del step, model, runner, optimizer, batch
    stats = summarize(times)
    model_name = setting.model + ("-tiny" if setting.tiny else "")  # tiny lines never pass for the real model
    return {"kind": "train", "model": model_name, "tiny": setting.tiny, "method": spec.name,
            "method_config": method_config, "impl": spec.impl, "batch": setting.batch, "seq": setting.seq,
            "precision": setting.precision,
            "tokens_per_s": setting.batch * setting.seq / (stats["median_ms"] / 1e3),
            "step_ms_median": stats["median_ms"], "mean_ms": stats["mean_ms"], "std_ms": stats["std_ms"],
            "trials": stats["trials"], "warmup": setting.warmup,
            "peak_memory_bytes": peak.bytes, "peak_memory_kind": peak.kind,
            "trainable_params": trainable, "total_params": total, "final_loss": loss,
            "options": asdict(fast)}
