"""Where a run's adapter lives, so that nothing finished is overwritten by a run that did not finish.

While a run trains, its best adapter is staged in its state dir (``checkpoints/<id>/state/adapter/``,
kept across resumes with the rest of the resume state). Only when the run finishes is it published:

1. `promote` hard-links (or copies) the staged files into a NEW versioned dir ``checkpoints/<id>/adapter.<stamp>/``
   (built under a temp name, then renamed), next to the finished adapter of an earlier run, which stays;
2. the caller writes the record pointing at that versioned dir: the atomic record write is the commit point;
3. `publish` points the stable name ``checkpoints/<id>/adapter`` (a relative symlink, what
   ``method_init_from`` and the docs use) at it with an atomic rename, and removes older versions.

A rerun (``skip_existing=false``) that is stopped or fails anywhere before step 2 leaves the finished record
and the adapter it points at untouched; a crash between steps leaves at most a stray version dir that the
next publish removes.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import secrets
import shutil
from pathlib import Path

from .. import paths
from ..train.state import STATE_FILE

STAGED = "adapter"          # the best adapter so far, inside the run's state dir
VERSION_PREFIX = "adapter."


def staged_dir(results_dir, run_id: str) -> Path:
    return paths.state_dir(results_dir, run_id) / STAGED


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)      # the staged file is never written in place again (save_adapter renames)
    except OSError:
        shutil.copy2(src, dst)


def promote(staged: Path, results_dir, run_id: str) -> Path:
    """A new versioned adapter dir holding the staged adapter's files; the staged one stays (a crash before
    the record is written resumes and promotes again)."""
    ckpt = paths.checkpoint_dir(results_dir, run_id)
    stamp = f"{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    final, tmp = ckpt / f"{VERSION_PREFIX}{stamp}", ckpt / f".{VERSION_PREFIX}{stamp}.tmp"
    shutil.copytree(staged, tmp, copy_function=_link_or_copy)
    os.replace(tmp, final)
    return final


def publish(final: Path, results_dir, run_id: str) -> None:
    """After the record pointing at ``final`` is written: ``checkpoints/<id>/adapter`` -> ``final``, and every
    other version (the previous finished adapter, strays of crashed promotions) removed."""
    ckpt = paths.checkpoint_dir(results_dir, run_id)
    link = paths.adapter_dir(results_dir, run_id)
    if link.is_dir() and not link.is_symlink():   # a plain dir from before versioned adapters: retire it
        os.replace(link, ckpt / f".{VERSION_PREFIX}retired-{secrets.token_hex(3)}.tmp")
    tmp_link = ckpt / f".adapter.link-{secrets.token_hex(3)}.tmp"
    os.symlink(final.name, tmp_link)
    os.replace(tmp_link, link)
    for old in list(ckpt.glob(f"{VERSION_PREFIX}*")) + list(ckpt.glob(f".{VERSION_PREFIX}*.tmp")):
        if old.name != final.name and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)


def clear_stale_stage(results_dir, run_id: str, resume: bool) -> None:
    """A run that starts from step 0 (no resume state, or resume=false) must not promote an adapter staged
    by an earlier attempt."""
    if resume and (paths.state_dir(results_dir, run_id) / STATE_FILE).is_file():
        return
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(staged_dir(results_dir, run_id))
