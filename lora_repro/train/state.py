"""Resumable training state: trainable weights, optimizer, scheduler, grad scaler, RNG states and
progress, in one file written atomically. Frozen weights are not saved: a resumed run rebuilds the
model the same way (same seed, same checkpoint) and loads only what trains.

The file holds tensors and plain data only (RNG states as tensors and lists of ints, progress as JSON
text) and is read back with ``torch.load(weights_only=True)``: a planted or tampered ``state.pt`` can
fail to load, but it can never run code. A file that does not load is named, with the two ways out."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checks import ConfigError
from ..methods.io import trainable_tensors
from ..paths import create_mode

STATE_FILE = "state.pt"
log = logging.getLogger("lora_repro.train")
STATE_FORMAT = 2   # 1: the pickled states of before (read no more: loading them needed weights_only=False)


class ResumeStateError(ConfigError):
    """The saved resume state cannot be used; the message names the file and the two ways out."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"cannot resume from {path}: {reason}. Either relaunch with resume=false (trains from "
                         f"step 0 and replaces it) or delete {path} (the same)")
        self.path = path


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in trainable_tensors(model).items()}


def rng_state() -> dict:
    """Every RNG state as tensors and plain ints (what weights_only loading accepts)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(internal), gauss],
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(directory: str | os.PathLike, model, optimizer, scheduler, scaler, progress: dict) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", suffix=".tmp", dir=directory)  # a name of its own
    try:
        os.chmod(tmp, create_mode())   # mkstemp makes 0600; a shared results dir wants the umask's mode
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": STATE_FORMAT, "model": trainable_state(model), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                        "rng": rng_state(), "progress": json.dumps(progress, default=float)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def read_state(path: str | os.PathLike) -> dict:
    """The saved state as data (no code runs); ResumeStateError naming ``path`` when it is unreadable,
    truncated, refused (it holds something other than tensors and plain data) or of another format."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises OSError, RuntimeError, UnpicklingError, EOFError, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            first = ("it holds objects other than tensors and plain data: written by an older version, or planted "
                     "(refused: unpickling them could run code)")
        raise ResumeStateError(path, f"the file does not load ({type(e).__name__}: {first})") from e
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        fmt = state.get("format", 1) if isinstance(state, dict) else type(state).__name__
        raise ResumeStateError(path, f"it is not a state this version writes (format {fmt!r}, want {STATE_FORMAT})")
    missing = [k for k in ("model", "optimizer", "scheduler", "scaler", "rng", "progress") if k not in state]
    if missing:
        raise ResumeStateError(path, f"it lacks {missing}")
    try:
        state["progress"] = json.loads(state["progress"])
    except (TypeError, ValueError) as e:
        raise ResumeStateError(path, f"its progress is not JSON ({e})") from e
    return state


def load_progress(directory: str | os.PathLike) -> dict | None:
    """The progress of the state saved in ``directory`` (None when there is none), without restoring it."""
    path = Path(directory) / STATE_FILE
    return read_state(path)["progress"] if path.is_file() else None


def load_state(directory: str | os.PathLike, model, optimizer, scheduler, scaler) -> dict | None:
    """Restore a saved state into the live objects; returns its progress (None when there is none)."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        log.info("fresh start: no saved state in %s", directory)   # a resumed run logs the step it resumes from
        return None
    state = read_state(path)
    try:
        missing = model.load_state_dict(state["model"], strict=False)
        if missing.unexpected_keys:
            raise ResumeStateError(path, f"it holds weights this model lacks: {missing.unexpected_keys[:5]}")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
    except ResumeStateError:
        raise
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as e:
        raise ResumeStateError(path, f"it does not fit this run ({type(e).__name__}: {e})") from e
    return state["progress"]
