"""Preemption: a stop signal (SIGTERM; SIGUSR1, SLURM's `--signal` warning; submitit's requeue signal,
SIGUSR2 by default) does not kill a run mid-step. The handler only records the signal; the training loop
checks `requested` at each step boundary, saves the full resume state and returns; the run then hands the
signal to whoever handled it before (`deliver`): submitit's handler checkpoints the job (the launcher's
`checkpoint()` resubmits the same overrides), requeues it and exits, and the requeued run resumes from the
state just saved. Without a previous handler the process exits with status 128 + signal number.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator

log = logging.getLogger("lora_repro.preempt")


def stop_signals() -> list[signal.Signals]:
    """SIGTERM, SIGUSR1 and, under submitit, its preemption/timeout signal (SUBMITIT_PREEMPT_SIGNAL)."""
    sigs = [signal.SIGTERM, signal.SIGUSR1]
    if os.environ.get("SUBMITIT_FOLDER") or os.environ.get("SUBMITIT_PREEMPT_SIGNAL"):
        extra = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)
        if extra is not None and extra not in sigs:
            sigs.append(extra)
    return sigs


class StopRequest:
    """What the handler recorded: the first stop signal received (None: keep training)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            log.warning("received %s: checkpointing at the next step boundary", signal.Signals(signum).name)
            self.signum = signum

    def deliver(self) -> None:
        """Pass the recorded signal on, now that the state is saved: to the previous handler (submitit
        requeues and exits there), else exit with 128 + signum as if the signal had terminated us."""
        if self.signum is None:
            return
        signum, previous = self.signum, self.previous.get(self.signum, signal.SIG_DFL)
        self.signum = None
        if callable(previous):
            previous(signum, None)
        raise SystemExit(128 + signum)


@contextlib.contextmanager
def deferred_stop_signals(signals: list[signal.Signals] | None = None) -> Iterator[StopRequest]:
    """Record stop signals instead of dying on them while the body runs; previous handlers come back after.
    Signals that were ignored (SIG_IGN) stay ignored; outside the main thread nothing is installed."""
    request = StopRequest()
    try:
        for sig in stop_signals() if signals is None else signals:
            previous = signal.getsignal(sig)
            if previous == signal.SIG_IGN:
                continue
            signal.signal(sig, request._handle)
            request.previous[sig] = previous
    except ValueError:  # not the main thread: signals cannot be caught here
        pass
    try:
        yield request
    finally:
        for sig, previous in request.previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
