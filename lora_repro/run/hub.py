"""What a run needs from the Hugging Face Hub, whether it is already cached, and a fast, one-line failure when
it is not and the hub cannot be reached (an air-gapped compute node).

A run needs the checkpoint of `model.pretrained` (config, weights, tokenizer), a separate `model.tokenizer`
repo when it names one, and the task's hub dataset when `task.data_dir` is null. Local dirs and
`package:` sources need nothing. `lora-repro fetch` (sweeps/fetch.py) downloads these on a machine with
internet; `run.validate` asks `unavailable` so that a run on a node without it fails in seconds, naming what
is missing and the fetch command, instead of spending ~30 s in hub retries per file and then failing deep in
`from_pretrained`. Nothing here downloads.
"""
from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

# Files of a checkpoint repo, as `from_pretrained` looks for them (the first weights format found wins).
CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "spm.model")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
PROBE_TIMEOUT_S = 3.0
log = logging.getLogger("lora_repro.run")
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True)
class HubNeed:
    """One hub repo a run reads: a model checkpoint (with its tokenizer when `tokenizer`), a tokenizer-only
    repo, or a dataset config (`name`, e.g. GLUE's `rte`)."""
    kind: str                     # "model" | "tokenizer" | "dataset"
    repo_id: str
    name: str | None = None       # dataset config
    revision: str | None = None
    tokenizer: bool = True        # a model repo whose tokenizer the run loads too

    def __str__(self) -> str:
        return f"{self.kind} {self.repo_id}" + (f" ({self.name})" if self.name else "")


def is_hub_id(source) -> bool:
    """A hub repo id (`org/name` or a legacy `name`), not a local dir or a `package:` source."""
    return (isinstance(source, str) and not source.startswith("package:") and not Path(source).exists()
            and bool(_REPO_ID.match(source)))


def needs(config: Mapping) -> list[HubNeed]:
    """The hub repos a resolved run config reads, in load order (model, tokenizer, dataset)."""
    from ..tasks import TASKS

    out: list[HubNeed] = []
    model = config.get("model") or {}
    pretrained, tokenizer = model.get("pretrained"), model.get("tokenizer")
    if is_hub_id(pretrained):
        out.append(HubNeed("model", pretrained, tokenizer=not tokenizer or tokenizer == pretrained))
    if tokenizer and tokenizer != pretrained and is_hub_id(tokenizer):
        out.append(HubNeed("tokenizer", tokenizer))
    task = config.get("task") or {}
    cls = TASKS.get(task.get("name"))
    if cls is not None and cls.hub_path and task.get("data_dir") is None:   # no hub_path: a fixture-only task
        out.append(HubNeed("dataset", cls.hub_path, cls.hub_name, cls.hub_revision))
    return out


def unique(items: Iterable[HubNeed]) -> list[HubNeed]:
    """`items` without repeats, in first-seen order; the needs of one repo merge (model wins over tokenizer-only,
    the tokenizer is fetched when any of them loads it)."""
    out: dict[tuple, HubNeed] = {}
    for n in items:
        key = (n.kind == "dataset", n.repo_id, n.name, n.revision)
        seen = out.get(key)
        if seen is not None and seen != n:
            kind = "model" if "model" in (seen.kind, n.kind) else seen.kind
            n = HubNeed(kind, n.repo_id, n.name, n.revision, tokenizer=seen.tokenizer or n.tokenizer)
        out[key] = n
    return list(out.values())


# --- the caches -------------------------------------------------------------------------------------
def cache_dirs(hf_home: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(hub cache, datasets cache): `<hf_home>/hub` and `<hf_home>/datasets`, or the libraries' own
    (HF_HOME, HF_HUB_CACHE, HF_DATASETS_CACHE) when `hf_home` is None."""
    if hf_home is not None:
        return Path(hf_home) / "hub", Path(hf_home) / "datasets"
    import datasets.config
    from huggingface_hub import constants
    return Path(constants.HF_HUB_CACHE), Path(datasets.config.HF_DATASETS_CACHE)


def _cached_file(repo_id: str, filename: str, hub_cache: Path, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache
    return isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=hub_cache, revision=revision), str)


def is_cached(need: HubNeed, hf_home: str | os.PathLike | None = None) -> bool:
    """Whether what `need` loads is in the cache (no network): a checkpoint's config, one weights file and
    a tokenizer file; a dataset config prepared by `datasets.load_dataset`."""
    hub_cache, datasets_cache = cache_dirs(hf_home)
    if need.kind == "dataset":
        try:
            from datasets.packaged_modules.cache.cache import _find_hash_in_cache  # datasets' own offline lookup
        except ImportError:   # another datasets layout: cannot tell, so do not block the run
            return True
        try:
            _find_hash_in_cache(need.repo_id, need.name, str(datasets_cache), {}, None)
        except (ValueError, OSError):
            return False
        return True
    has = functools.partial(_cached_file, need.repo_id, hub_cache=hub_cache, revision=need.revision)
    if not has(CONFIG_FILE) and need.kind == "model":
        return False
    if need.kind == "model" and not any(has(f) for f in WEIGHT_FILES):
        return False
    return not (need.kind == "tokenizer" or need.tokenizer) or any(has(f) for f in TOKENIZER_FILES)


# --- the hub ----------------------------------------------------------------------------------------
def offline_reason() -> str | None:
    """Why the hub is off limits by setting (HF_HUB_OFFLINE and friends), None when it is not."""
    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE=1"
    if os.environ.get("HF_DATASETS_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return "HF_DATASETS_OFFLINE=1"
    return None


@functools.cache
def unreachable_reason() -> str | None:
    """Why the hub cannot be reached (offline by setting, or one TCP connect to its endpoint fails within
    PROBE_TIMEOUT_S); None when it can. Asked once per process. Behind a proxy the hub counts as reachable."""
    reason = offline_reason()
    if reason or any(os.environ.get(v) for v in PROXY_VARS):
        return reason
    import socket

    from huggingface_hub import constants
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as e:
        return f"cannot reach {constants.ENDPOINT}: {e}"
    return None


def unavailable(config: Mapping, hf_home=None) -> tuple[list[HubNeed], str | None]:
    """(the hub repos this run needs that are not cached, why the hub cannot supply them); ([], None) when
    the run can load everything (cached, or the hub is reachable: then it downloads)."""
    wanted = needs(config)
    missing = [n for n in wanted if not is_cached(n, hf_home)]
    if not missing:
        if wanted and offline_reason() is None and unreachable_reason():
            _warn_retries(unreachable_reason())
        return [], None
    reason = unreachable_reason()
    return (missing, reason) if reason else ([], None)


@functools.cache
def _warn_retries(reason: str) -> None:
    """Once per process: cached files are found, but only after the libraries retry the hub (~30 s a file)."""
    log.warning("the hub is unreachable (%s) and HF_HUB_OFFLINE is not set: the libraries retry it for ~30 s per "
                "file before using the cache; set HF_HUB_OFFLINE=1 on machines without internet", reason)


def fetch_command(config: Mapping) -> str:
    """The `lora-repro fetch` line that gets what this run needs."""
    parts = ["lora-repro fetch"]
    model, task = config.get("model") or {}, config.get("task") or {}
    if model.get("name"):
        parts.append(f"model={model['name']}")
    if task.get("name"):
        parts.append(f"task={task['name']}")
    return " ".join(parts)


def unavailable_problem(missing: list[HubNeed], reason: str, config: Mapping) -> str:
    """One line: what is missing, where it was looked for, why the hub cannot help, and the fix."""
    hub_cache, _ = cache_dirs()
    return (f"not in the Hugging Face cache ({hub_cache.parent}) and the hub is unreachable ({reason}): "
            f"{', '.join(map(str, missing))}; on a machine with internet run `{fetch_command(config)}` "
            f"(into the HF_HOME these runs use; see README, Offline clusters)")
