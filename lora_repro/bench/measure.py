"""Timing, the same way for every method: CUDA steps are timed between `torch.cuda.synchronize()` calls, CPU
steps by wall time. Peak memory is `lora_repro.train.measure.PeakMemory` (the peak over a block), imported here
for the benchmark's modules.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch

from ..train.measure import PeakMemory  # noqa: F401  (bench's peak: one block)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], device: torch.device, warmup: int, trials: int) -> list[float]:
    """Seconds per call of `fn` for `trials` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(trials):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def summarize(times: list[float]) -> dict:
    ms = [t * 1e3 for t in times]
    return {"median_ms": statistics.median(ms), "mean_ms": statistics.fmean(ms),
            "std_ms": statistics.stdev(ms) if len(ms) > 1 else 0.0, "trials": len(ms)}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@contextmanager
def released(device: torch.device):
    """Free what the previous measurement left, so that each method starts from the same memory."""
    import gc
    try:
        yield
    finally:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        else:  # hand freed heap back to the OS, or the next method's RSS starts at this one's peak
            try:
                import ctypes
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            except (OSError, AttributeError):
                pass
