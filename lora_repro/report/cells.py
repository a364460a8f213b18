"""Which runs a paper cell counts: exactly the runs of the preset's cell, seed aside.

A record used to join a cell when model, method, r/targets and protocol matched, so an ad-hoc 3-epoch run in the
same results dir became one more "seed" of the paper cell (fidelity review W4). Here a cell's identity is the
run identity of the preset job that fills it (`records.identity_config`) with the seed left out; a record counts
when its own identity-minus-seed is that one. A record that matches the row loosely but not the identity is a
near miss: the table lists it as "not counted" with the keys that differ.

Two runs of one cell differ only in ``seed`` -- and in ``method_init_from`` when they start from the same seed's
MNLI run (stage 2): that path names the source run's id under a results dir, so it is replaced by the source's
own cell key before hashing (the results dir and the seed drop out with it).

The preset jobs are composed with `sweeps.compose` (one composition per cell, seed fixed), only for a table that
has records matching one of its paper rows, and cached in ``<results>/tables/.cells-<conf hash>.json``, so a
table rebuild after a sweep does not compose again until a config file changes.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import records

SEED_KEY = "seed"
INIT_KEY = "method_init_from"


@dataclass(frozen=True)
class CellIdentity:
    key: str          # hash of the identity config minus the seed (init source replaced by its cell key)
    flat: dict        # that config flattened to dotted keys (for "which keys differ")
    preset: str       # the preset job that defines it (e.g. "+experiment/table2=roberta-base_lora/mnli")


def _flatten(obj, prefix: str = "") -> dict:
    if isinstance(obj, Mapping):
        out: dict = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: obj}


def source_run_id(init_from: str) -> str:
    """The run id in ``<results>/checkpoints/<run_id>/adapter`` (or the path itself when it has another shape)."""
    p = Path(str(init_from))
    return p.parent.name if p.name == "adapter" else str(init_from)


def seedless(config: Mapping, key_of_run: Mapping[str, str]) -> dict:
    """The run's identity config without its seed; a start from another run becomes that run's cell key."""
    ident = records.identity_config(config)
    ident.pop(SEED_KEY, None)
    if ident.get(INIT_KEY):
        src = source_run_id(ident[INIT_KEY])
        ident[INIT_KEY] = f"cell:{key_of_run[src]}" if src in key_of_run else f"run:{src}"
    return ident


def cell_key(ident: Mapping) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def record_keys(recs: Iterable[Mapping]) -> dict[str, str]:
    """run_id -> cell key of every record (runs without a start-from first, so stage-2 runs find their source)."""
    keys: dict[str, str] = {}
    ordered = sorted(recs, key=lambda r: bool((r.get("config") or {}).get(INIT_KEY)))
    for rec in ordered:
        if isinstance(rec.get("config"), Mapping):
            keys[str(rec.get("run_id"))] = cell_key(seedless(rec["config"], keys))
    return keys


def differing_keys(have: Mapping, want: Mapping, limit: int = 6) -> list[str]:
    """'key: ours vs the cell's' for every dotted key whose value differs (at most ``limit``, then '...')."""
    a, b = _flatten(have), _flatten(want)
    diffs = [f"{k}: {a.get(k, '(absent)')!r} vs {b.get(k, '(absent)')!r}" for k in sorted(set(a) | set(b))
             if a.get(k, "(absent)") != b.get(k, "(absent)")]
    return diffs[:limit] + (["..."] if len(diffs) > limit else [])


def conf_fingerprint(config_dir: str | Path | None = None) -> str:
    """A hash of every config file: the cache of composed cells is valid while it is unchanged."""
    from ..sweeps.compose import DEFAULT_CONFIG_DIR

    root = Path(config_dir or DEFAULT_CONFIG_DIR)
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.yaml")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def preset_cells(presets: Iterable[str], config_dir: str | Path | None = None,
                 cache_dir: str | Path | None = None, overrides: Iterable[str] = ()) -> list[tuple[dict, CellIdentity]]:
    """(config, identity) of every cell of ``presets``, in order (later stages may start from earlier ones);
    ``overrides``: what the sweeps were launched with besides the preset (e.g. ``+batch_reading=paper``)."""
    presets, overrides = list(presets), list(overrides)
    memo_key = (str(config_dir), conf_fingerprint(config_dir), tuple(presets), tuple(overrides))
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    _MEMO[memo_key] = out = _preset_cells(presets, config_dir, cache_dir, overrides)
    return out


_MEMO: dict[tuple, list] = {}


def _preset_cells(presets: list[str], config_dir, cache_dir, overrides: list[str]) -> list[tuple[dict, CellIdentity]]:
    cache = None
    if cache_dir is not None:
        tag = hashlib.sha256(json.dumps([presets, overrides]).encode()).hexdigest()[:8]
        cache = Path(cache_dir) / f".cells-{conf_fingerprint(config_dir)}-{tag}.json"
        if cache.is_file():
            try:
                data = json.loads(cache.read_text())
                return [(c, CellIdentity(i["key"], i["flat"], i["preset"])) for c, i in data]
            except (ValueError, KeyError, TypeError):
                pass
    from ..sweeps import compose as sweep

    out: list[tuple[dict, CellIdentity]] = []
    key_of_run: dict[str, str] = {}
    with sweep.hydra_context(config_dir):
        for preset in presets:
            for job in sweep.preset_jobs(preset, [*overrides, f"{SEED_KEY}=1"], config_dir):
                ident = seedless(job.config, key_of_run)
                key_of_run[job.run_id] = cell_key(ident)
                preset_line = " ".join(o for o in job.overrides if o.startswith("+experiment/"))
                out.append((job.config, CellIdentity(cell_key(ident), _flatten(ident), preset_line)))
    if cache is not None:
        records.atomic_write_json(cache, [[c, i.__dict__] for c, i in out])
    return out
