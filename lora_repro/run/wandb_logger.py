"""Weights & Biases logging of a run: the resolved config, step losses, epoch metrics, and a summary
that mirrors the run's record (metrics, parameter counts, peak memory, tokens/s, wall time).

Offline by default: WANDB_MODE is set to the logger config's `mode` (default `offline`) unless the user
already set it, so runs never need a network; `wandb sync <results>/wandb/offline-run-*` uploads them
later. `logger=none` disables W&B. wandb is imported only when a run logs to it.

W&B never decides a run's fate: an error from wandb (its service killed by SLURM's SIGTERM to the whole job,
a full disk, a network hiccup online) is logged once as a warning and the run goes on without W&B, so a stop
signal still checkpoints and a finished run still writes its record. The W&B run id is the run id, resumed
with `resume="allow"`: a run stopped and resumed (preemption, requeue, re-launch) stays one W&B run, grouped
by its sweep preset and tagged with model, task, method and seed.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from ..records import SUMMARY_FIELDS, is_finished, metric_value

SUMMARY_KEYS = SUMMARY_FIELDS   # the record fields marked `summary` in records.Record
log = logging.getLogger("lora_repro.wandb")


class WandbLogger:
    """The run's W&B run; every call is non-fatal (the first error disables W&B for the rest of the run)."""

    def __init__(self, run):
        self.run = run
        self.broken: str | None = None     # the first W&B error, once one happened

    def _call(self, what: str, fn, *args, **kwargs) -> None:
        if self.broken is not None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - whatever wandb raises, the run must go on
            self.broken = f"{type(e).__name__}: {e}"
            log.warning("W&B %s failed (%s): the run goes on without W&B logging; its record is written as usual",
                        what, self.broken)

    def log(self, values: Mapping, step: int) -> None:
        self._call("log", self.run.log, dict(values), step=step)

    def finish_with(self, record: Mapping) -> None:
        """Put the record's numbers into the run summary, then close the run."""
        summary = {k: record.get(k) for k in SUMMARY_KEYS if record.get(k) is not None}
        summary.update({f"metrics/{k}": v for k, v in (record.get("metrics") or {}).items()})
        main = metric_value(record)
        if main is not None:
            summary["main_metric_value"] = main
        self._call("summary", self.run.summary.update, summary)
        self._call("finish", self.run.finish, exit_code=0 if is_finished(record) else 1)

    def stop(self) -> None:
        """The run stopped to be resumed (preemption): mark it preempting and close this segment."""
        self._call("mark_preempting", self.run.mark_preempting)
        self._call("finish", self.run.finish, exit_code=0)
        import wandb

        self.broken = None   # the process exits next: shut W&B's service down here, where its error is caught
        self._call("teardown", wandb.teardown)   # (killed with the job, it would raise from an atexit hook)

    @property
    def dir(self) -> Path:
        return Path(self.run.dir)


def run_tags(config: Mapping, preset: str | None) -> list[str]:
    """What a W&B user filters on: the preset (the paper table), model, task, method and seed."""
    tags = [preset] if preset else []
    tags += [str((config.get(k) or {}).get("name")) for k in ("model", "task", "method")
             if (config.get(k) or {}).get("name")]
    return tags + [f"seed={config.get('seed')}"]


def start(logger_cfg: Mapping | None, config: Mapping, run_id: str, results_dir: str,
          preset: str | None = None, where: Mapping | None = None) -> WandbLogger | None:
    """A W&B run for this training run (id = run_id, resumed when it exists), or None when `logger.name` is
    `none` or wandb cannot start (warned: the run goes on). ``preset`` is the sweep's `+experiment=` choice
    (the W&B group unless logger.group is set); ``where`` (job id, host, restarts) goes into the config."""
    if not logger_cfg or logger_cfg.get("name", "none") == "none":
        return None
    os.environ.setdefault("WANDB_MODE", logger_cfg.get("mode") or "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    directory = Path(logger_cfg.get("dir") or results_dir)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import wandb

        run = wandb.init(project=logger_cfg.get("project") or "lora-repro", entity=logger_cfg.get("entity"),
                         group=logger_cfg.get("group") or preset, job_type="train",
                         tags=list(logger_cfg.get("tags") or []) + run_tags(config, preset),
                         id=run_id, resume="allow", name=run_id, dir=str(directory),
                         config={**dict(config), **({"where": dict(where)} if where else {})},
                         reinit="finish_previous")
    except Exception as e:  # noqa: BLE001 - no W&B is a warning, never a lost run
        log.warning("W&B could not start (%s: %s): the run goes on without W&B logging", type(e).__name__, e)
        return None
    return WandbLogger(run)


# --- reading an offline run back (tests, and checking a run before `wandb sync`) -----------------
_BLOCK, _HEADER = 32768, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _log_payloads(data: bytes):
    """Records of a `.wandb` transaction log: a 7-byte ':W&B' file header, then LevelDB-log records
    (crc32, length u16, type u8) in 32 KiB blocks, large records split FIRST/MIDDLE/LAST."""
    if data[:4] != b":W&B":
        raise ValueError("not a W&B transaction log")
    pos, chunks = _HEADER, []
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer padding
            pos += left
            continue
        length = int.from_bytes(data[pos + 4:pos + 6], "little")
        kind = data[pos + 6]
        payload = data[pos + _HEADER:pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 0 and length == 0:
            continue
        if kind == _FULL:
            yield payload
        elif kind == _FIRST:
            chunks = [payload]
        elif kind == _MIDDLE:
            chunks.append(payload)
        elif kind == _LAST:
            chunks.append(payload)
            yield b"".join(chunks)


def read_offline_run(run_dir: str | os.PathLike) -> dict:
    """{'config': {...}, 'summary': {...}, 'name', 'id', 'group': str, 'tags': [...]} of an offline run directory
    (`<dir>/wandb/offline-run-*`), decoded from its `.wandb` log with wandb's own protobufs."""
    import json

    from wandb.proto import wandb_internal_pb2 as pb

    (log,) = Path(run_dir).glob("run-*.wandb")
    config, summary, name, run_id, group, tags = {}, {}, None, None, None, []
    for payload in _log_payloads(log.read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(payload)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            name, run_id, group, tags = rec.run.display_name, rec.run.run_id, rec.run.run_group, list(rec.run.tags)
            config.update({u.key: json.loads(u.value_json) for u in rec.run.config.update})
        elif kind == "config":
            config.update({u.key: json.loads(u.value_json) for u in rec.config.update})
        elif kind == "summary":
            for u in rec.summary.update:
                key = "/".join(u.nested_key) if u.nested_key else u.key
                summary[key] = json.loads(u.value_json)
    config.pop("_wandb", None)
    run_id = run_id or Path(run_dir).name.rsplit("-", 1)[-1]   # a segment cut short has no run record yet
    return {"name": name, "id": run_id, "group": group, "tags": tags, "config": config, "summary": summary}
