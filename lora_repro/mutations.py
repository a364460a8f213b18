"""Test-only switches that break a safety mechanism on purpose, so the fault suite can show it would notice.

`LORA_REPRO_MUTATE=no-resume,no-lock` (comma-separated): `no-resume` makes the trainer ignore a saved state
(train/loop.py), `no-lock` makes a run skip its run lock (run/execute.py). Each switch is read in exactly that
one place. Never set this outside `tools/faults.py --mutate` and its test: a mutated build is wrong on purpose.
"""
from __future__ import annotations

import os

ENV = "LORA_REPRO_MUTATE"
KNOWN = ("no-resume", "no-lock")


def active(name: str) -> bool:
    """Whether the mutation `name` (one of KNOWN) is switched on in this process's environment."""
    if name not in KNOWN:
        raise ValueError(f"unknown mutation {name!r}; known: {', '.join(KNOWN)}")
    return name in {m.strip() for m in os.environ.get(ENV, "").split(",")}
