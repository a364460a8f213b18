"""Timing and peak memory, the same way for every method.

CUDA: steps are timed between `torch.cuda.synchronize()` calls, and the peak is
`torch.cuda.max_memory_allocated()` since a reset (weights, gradients, optimizer state and activations).
CPU: wall time, and the peak resident set size sampled every millisecond by a thread while the steps run
(`cpu_rss`: the whole process, interpreter included, so compare methods, not absolute values).
"""
from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch


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


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # no procfs: the lifetime peak is the best there is
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """`with PeakMemory(device) as peak: ...` then `peak.bytes` and `peak.kind` ("cuda" or "cpu_rss")."""

    def __init__(self, device: torch.device, interval_s: float = 1e-3):
        self.device, self.interval_s = device, interval_s
        self.kind = "cuda" if device.type == "cuda" else "cpu_rss"
        self.bytes = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.bytes = max(self.bytes, _rss_bytes())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        if self.kind == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.bytes = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.kind == "cuda":
            self.bytes = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self._stop.set()
            self._thread.join()
            self.bytes = max(self.bytes, _rss_bytes())


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
