"""Peak memory and throughput of a run (never asserted in tests: they are measurements)."""
from __future__ import annotations

import resource
import sys
import time

import torch


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[int, str]:
    """(bytes, kind): CUDA's max allocated on a GPU, else the process's peak resident set size."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024), "cpu_rss"


class Stopwatch:
    """Sums the seconds spent inside `with watch:` blocks."""

    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self._t0
