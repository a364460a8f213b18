"""Progress of long work (training, evaluation, beam search, composing a sweep's jobs) for a person at a terminal
and for a log file.

At a terminal (stderr is a TTY) it is a tqdm bar. Elsewhere (a SLURM `.out`, Hydra's `app.log`, CI, the tests) a
bar's `\\r` updates are noise, so it is a log line at most every `LOG_EVERY_S` seconds with the count, the rate and
the time left: a log shows that the work is alive and how far it is. `enabled=False` (the `progress_bar=false`
option) is silent.
"""
from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("lora_repro.progress")
LOG_EVERY_S = 60.0


def cli_logging() -> None:
    """A console command (`lora-repro plan`, `fetch`) shows the package's log lines, progress included, on
    stderr, unless logging is configured already (the Hydra app configures its own)."""
    pkg = logging.getLogger("lora_repro")
    if not pkg.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        pkg.addHandler(handler)
        pkg.setLevel(logging.INFO)


def interactive() -> bool:
    """Whether a person watches stderr (a terminal), so a bar is worth drawing."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `2h07m`."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class LogBar:
    """The tqdm calls the trainer makes (update, set_postfix, close), written as log lines, at most one per
    `every_s` seconds: `<desc>: 120/800 (15%), 3.1/s, ETA 3m40s, loss=0.6123`."""

    def __init__(self, total: int | None, desc: str, initial: int = 0, unit: str = "it",
                 every_s: float | None = None, clock=time.monotonic, logger: logging.Logger = log):
        self.total, self.desc, self.n, self.unit = total, desc, initial, unit
        self.every_s = LOG_EVERY_S if every_s is None else every_s
        self.clock, self.logger = clock, logger
        self.start_n, self.start = initial, clock()
        self.last = self.start
        self.postfix: dict = {}
        self.disable = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.every_s:
            self.last = now
            self.logger.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (self.clock() if now is None else now) - self.start
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else f"{self.n}"
        parts = [f"{self.desc}: {done} {self.unit}", f"{rate:.3g} {self.unit}/s"]
        if self.total and rate > 0:
            parts.append(f"ETA {duration((self.total - self.n) / rate)}")
        parts += [f"{k}={v}" for k, v in self.postfix.items()]
        return ", ".join(parts)

    def set_postfix(self, **values) -> None:
        self.postfix = values

    def close(self) -> None:
        pass


def bar(total: int | None, desc: str, *, enabled: bool = True, initial: int = 0, unit: str = "it"):
    """A tqdm bar at a terminal, a `LogBar` elsewhere, a disabled tqdm (no output) when not `enabled`."""
    from tqdm.auto import tqdm

    if enabled and not interactive():
        return LogBar(total, desc, initial, unit)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, disable=not enabled)


def epoch_line(epoch: int, epochs: int, metrics: dict, main_metric: str, best_epoch: int | None,
               step: int, total_steps: int, seconds: float) -> str:
    """The log line of an evaluated epoch: the main metric first, then the others and the best epoch so far."""
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    keys = [main_metric] + sorted(k for k in metrics if k != main_metric)
    shown = ", ".join(f"{k}={fmt(metrics[k])}" for k in keys if k in metrics)
    return (f"epoch {epoch}/{epochs}: {shown} (best: epoch {best_epoch}; step {step}/{total_steps}, "
            f"{duration(seconds)} training)")
