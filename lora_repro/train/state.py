"""Resumable training state: trainable weights, optimizer, scheduler, grad scaler, RNG states and
progress, in one file written atomically. Frozen weights are not saved: a resumed run rebuilds the
model the same way (same seed, same checkpoint) and loads only what trains."""
from __future__ import annotations

import contextlib
import logging
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..methods.io import trainable_tensors

STATE_FILE = "state.pt"
log = logging.getLogger("lora_repro.train")


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in trainable_tensors(model).items()}


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(directory: str | os.PathLike, model, optimizer, scheduler, scaler, progress: dict) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", suffix=".tmp", dir=directory)  # a name of its own
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"model": trainable_state(model), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                        "rng": rng_state(), "progress": progress}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def load_state(directory: str | os.PathLike, model, optimizer, scheduler, scaler) -> dict | None:
    """Restore a saved state into the live objects; returns its progress (None when there is none)."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        log.info("fresh start: no saved state in %s", directory)   # a resumed run logs the step it resumes from
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    missing = model.load_state_dict(state["model"], strict=False)
    if missing.unexpected_keys:
        raise RuntimeError(f"checkpoint {path} holds weights this model lacks: {missing.unexpected_keys[:5]}")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return state["progress"]
