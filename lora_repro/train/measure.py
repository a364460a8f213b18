"""Peak memory and throughput (never asserted in tests: they are measurements).

Two peaks, because two questions are asked:
  * `peak_memory(device)`: the peak since `reset_peak_memory` (CUDA) or of the whole process life (CPU,
    `ru_maxrss`). Runs record it: one run per process, so the lifetime peak is the run's peak.
  * `PeakMemory`: the peak over one `with` block, CPU sampled from `/proc/self/statm` every millisecond. The
    benchmark measures several methods in one process, where a lifetime peak would only ever grow.
On CUDA both are `torch.cuda.max_memory_allocated` (weights, gradients, optimizer state, activations); on CPU
both are the resident set of the whole process, interpreter included (kind `cpu_rss`: compare, don't add).
"""
from __future__ import annotations

import os
import resource
import sys
import threading
import time

import torch


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[int, str]:
    """(bytes, kind): CUDA's max allocated on a GPU, else the process's lifetime peak resident set size."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda"
    return _max_rss_bytes(), "cpu_rss"


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # no procfs: the lifetime peak is the best there is
        return _max_rss_bytes()


class PeakMemory:
    """`with PeakMemory(device) as peak: ...` then `peak.bytes` and `peak.kind` ("cuda" or "cpu_rss"): the peak
    over the block alone (CPU: a thread samples the resident set every `interval_s`)."""

    def __init__(self, device: torch.device, interval_s: float = 1e-3):
        self.device, self.interval_s = device, interval_s
        self.kind = "cuda" if device.type == "cuda" else "cpu_rss"
        self.bytes = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.bytes = max(self.bytes, _rss_bytes())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
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


class Stopwatch:
    """Sums the seconds spent inside `with watch:` blocks."""

    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self._t0
