"""Training fast paths: what a parameter-efficient run can skip that full fine-tuning cannot.

LoRA's speed claim (Sec 4.2: ~25% faster training than full fine-tuning on GPT-3) comes from not computing,
storing or updating anything for the frozen weights. These helpers make a training step pay only for what trains:

- `prepare_model_for_training(model, "bf16")`: frozen parameters and buffers are cast to bf16 once; trainable
  tensors stay fp32 (they are the optimizer's master weights). No fp32 master copy of the frozen base, no per-step
  autocast cast of weights that never change. Run the step under `autocast(model, precision)` so that the fp32
  trainable layers (LoRA factors, adapters, the task head) compute in bf16 with the bf16 base.
- `make_optimizer(model, ...)`: AdamW over only the trainable tensors, `fused=True` on CUDA (one kernel for the
  whole update), `foreach=True` elsewhere; 1-D tensors (biases, LayerNorm) without weight decay, as the paper's
  Hugging Face trainer does.
- `LengthGroupedSampler`: batches of similar lengths (less padding) for GLUE, deterministic given seed and epoch.
- `attention_kwargs("sdpa")` for `from_pretrained`/`from_config`, and `maybe_compile(model, enabled)`.

The trainer calls, in this order::

    model = AutoModel...from_pretrained(name, **attention_kwargs("sdpa"))
    report = apply_method(model, method_cfg)
    model = prepare_model_for_training(model, precision).to(device)
    optimizer = make_optimizer(model, lr, weight_decay, betas, eps)
    model = maybe_compile(model, compile_flag)
    for batch in loader:
        with autocast(model, precision):
            loss = model(**batch).loss
        loss.backward(); optimizer.step(); optimizer.zero_grad(set_to_none=True)

This module needs only torch (no hydra, datasets or wandb).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "fp16")
TRAINER_PRECISIONS = ("auto", *PRECISIONS)  # what `trainer.precision` takes (`auto` -> resolve_precision)
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not supported; valid: {', '.join(PRECISIONS)}")


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """`auto` (the trainer's default): bf16 where the device computes it natively (a CUDA GPU with bf16
    support), fp32 elsewhere; any other value is returned as it is, after checking it."""
    if precision == "auto":
        device = torch.device(device)
        native = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return "bf16" if native else "fp32"
    _check_precision(precision)
    return precision


def compute_dtype(precision: str) -> torch.dtype:
    _check_precision(precision)
    return _DTYPES[precision]


def prepare_model_for_training(model: nn.Module, precision: str = "fp32", frozen_low_precision: bool = True
                               ) -> nn.Module:
    """Cast frozen parameters and floating buffers to the training precision (bf16/fp16), once, in place.

    Trainable parameters stay fp32: they are what the optimizer updates, so they need the full precision and
    need no separate master copy. A module that holds both (a Linear or LayerNorm whose bias trains, as in BitFit)
    is left in fp32 as a whole: ops like CPU layer_norm reject mixed weight/bias dtypes. With `frozen_low_precision=False` (or fp32) nothing changes: the classic mixed
    precision path where autocast casts every weight in every step. Call after `apply_method` (which decides what
    trains) and before `make_optimizer`.
    """
    dtype = compute_dtype(precision)
    if dtype == torch.float32 or not frozen_low_precision:
        return model
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if any(p.requires_grad for p in own):
            continue  # a module mixing trainable and frozen tensors (BitFit's biases) keeps one dtype
        for p in own:
            if p.is_floating_point():
                p.data = p.data.to(dtype)
    for module in model.modules():
        for name, b in module.named_buffers(recurse=False):
            if b is not None and b.is_floating_point():
                setattr(module, name, b.to(dtype))
    return model


def autocast(model_or_device: nn.Module | torch.device | str, precision: str = "fp32"):
    """The context a training or evaluation step runs in: autocast to bf16/fp16, or nothing for fp32."""
    dtype = compute_dtype(precision)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    if isinstance(model_or_device, nn.Module):
        device = next(model_or_device.parameters()).device
    else:
        device = torch.device(model_or_device)
    return torch.autocast(device_type=device.type, dtype=dtype)


def no_decay(name: str, p: torch.Tensor) -> bool:
    """Biases and LayerNorm weights (every 1-D tensor) get no weight decay, as in Hugging Face's Trainer."""
    return p.ndim < 2


def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                   eps: float = 1e-8, impl: str = "auto") -> torch.optim.AdamW:
    """AdamW over only the trainable tensors; frozen ones never enter the optimizer (no state, no loop).

    impl: "fused" (one kernel; CUDA, and CPU on recent torch), "foreach" (multi-tensor), "loop" (the
    per-parameter reference), "auto" = fused on CUDA, foreach elsewhere.
    """
    impls = ("auto", "fused", "foreach", "loop")
    if impl not in impls:
        raise ValueError(f"impl={impl!r} is not an AdamW implementation; valid: {', '.join(impls)}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("make_optimizer: the model has no trainable parameters (was apply_method called?)")
    if impl == "auto":
        impl = "fused" if named[0][1].is_cuda else "foreach"
    decay = [p for n, p in named if not no_decay(n, p)]
    plain = [p for n, p in named if no_decay(n, p)]
    groups = [g for g in ({"params": decay, "weight_decay": weight_decay},
                          {"params": plain, "weight_decay": 0.0}) if g["params"]]
    kwargs = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, **kwargs)


def attention_kwargs(implementation: str = "sdpa") -> dict:
    """Keyword arguments for `from_pretrained`/`from_config`: PyTorch's fused scaled-dot-product attention."""
    if implementation not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"attention implementation {implementation!r}; valid: {', '.join(ATTENTION_IMPLEMENTATIONS)}")
    return {"attn_implementation": implementation}


def maybe_compile(model: nn.Module, enabled: bool = False, **compile_kwargs) -> nn.Module:
    """`torch.compile(model)` when enabled; parameters are shared, so the optimizer may be built before or after."""
    return torch.compile(model, **compile_kwargs) if enabled else model


class LengthGroupedSampler(torch.utils.data.Sampler[int]):
    """Indices in batches of similar length: a seeded shuffle, cut into mega-batches of `batch_size * mega`
    examples, each sorted by length (longest first) and cut into batches; the batch holding the longest example
    goes first, so an out-of-memory error shows in the first step. The other batches keep their random order.

    A permutation of range(len(lengths)) for every epoch; the same (seed, epoch) gives the same order. Call
    `set_epoch(epoch)` between epochs for a new order.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, mega: int = 50):
        if batch_size < 1 or mega < 1:
            raise ValueError(f"batch_size={batch_size!r} and mega={mega!r} must be >= 1")
        self.lengths = [int(n) for n in lengths]
        self.batch_size, self.seed, self.mega, self.epoch = batch_size, seed, mega, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        size = self.batch_size * self.mega
        batches = []
        for start in range(0, len(order), size):
            mega_batch = sorted(order[start:start + size], key=lambda i: -self.lengths[i])  # stable: ties keep order
            batches += [mega_batch[j:j + self.batch_size] for j in range(0, len(mega_batch), self.batch_size)]
        if batches:
            longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b][0]])
            batches[0], batches[longest] = batches[longest], batches[0]
        return batches

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Tokens a run computes when each batch is padded to its longest example (what grouping saves)."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches if b)


def sequential_batches(n: int, batch_size: int, seed: int = 0) -> list[list[int]]:
    """The plain shuffled batching `LengthGroupedSampler` is compared with."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


__all__ = ["ATTENTION_IMPLEMENTATIONS", "PRECISIONS", "TRAINER_PRECISIONS", "LengthGroupedSampler", "attention_kwargs", "autocast",
           "compute_dtype", "make_optimizer", "resolve_precision", "maybe_compile", "no_decay", "padded_tokens",
           "prepare_model_for_training", "sequential_batches"]
