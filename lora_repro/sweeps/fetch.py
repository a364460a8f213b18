"""`lora-repro fetch`: download every model, tokenizer and dataset a sweep needs, on a machine with internet
(a cluster's login node), so that its jobs run on compute nodes without it (`HF_HUB_OFFLINE=1`).

    lora-repro fetch +experiment=table2            # the preset's 260 jobs need 3 checkpoints and 8 GLUE configs
    lora-repro fetch +experiment=table3 --dry-run  # what it would fetch, what is cached already (no network)
    lora-repro fetch model=roberta-base task=glue/rte --cache-dir /shared/hf   # then HF_HOME=/shared/hf

The jobs are the ones `train.py -m <overrides>` launches (`compose.sweep_overrides`, as `lora-repro validate`),
each one's needs come from `run.hub.needs`. The downloads are the libraries' own: a checkpoint is
`huggingface_hub.snapshot_download` of the files `from_pretrained` reads (config, tokenizer, one weights
format: safetensors, else PyTorch .bin; not the TF/Flax/ONNX copies), a dataset is `datasets.load_dataset`,
which prepares it where an offline run finds it. Both skip what is already there.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..run import hub
from . import compose as sweep

SKIP_SUFFIXES = (".h5", ".msgpack", ".ot", ".onnx", ".tflite", ".mlmodel", ".gguf", ".pt", ".ckpt")
KEEP_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".tiktoken")


def plan(overrides: Sequence[str]) -> tuple[int, list[hub.HubNeed]]:
    """(number of jobs, the hub repos they need, each once) for `train.py -m <overrides>`."""
    from ..train.progress import bar

    with sweep.hydra_context():
        jobs = sweep.sweep_overrides(list(overrides))
        shown = bar(len(jobs), "composing jobs", unit="job")
        found = []
        for job in jobs:
            found += hub.needs(sweep.resolved_config(job))
            shown.update(1)
        shown.close()
    return len(jobs), sorted(hub.unique(found), key=lambda n: n.kind == "dataset")   # checkpoints first


def repo_files(need: hub.HubNeed, listing: Sequence[str]) -> list[str]:
    """The files of a checkpoint repo that `from_pretrained` of the model (or only its tokenizer) reads: the
    top-level config and tokenizer files and one weights format (safetensors, else PyTorch .bin)."""
    top = [f for f in listing if "/" not in f]
    keep = [f for f in top if f.endswith(KEEP_SUFFIXES) and not f.endswith(SKIP_SUFFIXES)]
    if need.kind == "model":
        safetensors = [f for f in top if f.endswith(".safetensors")]
        keep += safetensors or [f for f in top if f.startswith("pytorch_model") and f.endswith(".bin")]
    return keep


def _size(paths: Sequence[Path]) -> int:
    return sum(os.path.getsize(p) for p in set(paths) if os.path.exists(p))


def fetch(need: hub.HubNeed, hf_home: str | os.PathLike | None = None) -> tuple[str, int]:
    """Download one need into the cache; (where it is, its size in bytes)."""
    hub_cache, datasets_cache = hub.cache_dirs(hf_home)
    if need.kind == "dataset":
        import datasets
        kwargs = {"revision": need.revision} if need.revision else {}
        ds = datasets.load_dataset(need.repo_id, need.name, cache_dir=str(datasets_cache), **kwargs)
        files = [Path(f["filename"]) for split in ds.values() for f in split.cache_files]
        return (str(files[0].parent) if files else str(datasets_cache)), _size(files)
    import huggingface_hub
    listing = huggingface_hub.list_repo_files(need.repo_id, revision=need.revision)
    wanted = repo_files(need, listing)
    folder = huggingface_hub.snapshot_download(need.repo_id, revision=need.revision, allow_patterns=wanted,
                                               cache_dir=str(hub_cache))
    return folder, _size([Path(folder, f) for f in wanted])


def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} B"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lora-repro fetch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="list what the jobs need and what is cached; no network")
    p.add_argument("--cache-dir", default=None, metavar="HF_HOME",
                   help="fetch into <dir>/hub and <dir>/datasets (run the jobs with HF_HOME=<dir>); "
                        "default: the Hugging Face cache of this environment")
    p.add_argument("overrides", nargs="*", help="the sweep's overrides, as given to experiments/train.py -m")
    args = p.parse_args(argv)
    from ..train.progress import cli_logging
    cli_logging()
    label = " ".join(args.overrides) or "(the default run)"
    try:
        n_jobs, needs = plan(args.overrides)
    except sweep.SweepError as e:
        print(f"lora-repro fetch: {e}", file=sys.stderr)
        return 2
    hub_cache, datasets_cache = hub.cache_dirs(args.cache_dir)
    print(f"{label}: {n_jobs} job(s) need {len(needs)} hub item(s) (hub cache {hub_cache}, datasets cache "
          f"{datasets_cache})")
    if not needs:
        print("nothing to fetch: every job reads local files (task.data_dir, local or package: checkpoints)")
        return 0
    if args.dry_run:
        for need in needs:
            state = "cached" if hub.is_cached(need, args.cache_dir) else "to fetch"
            print(f"  {state:<9} {need}")
        return 0
    reason = hub.unreachable_reason()
    if reason:
        print(f"lora-repro fetch: the hub is unreachable here ({reason}); run fetch on a machine with internet "
              "(--dry-run lists what is cached)", file=sys.stderr)
        return 2
    total, failed = 0, []
    for i, need in enumerate(needs, 1):
        print(f"[{i}/{len(needs)}] fetching {need} ...", flush=True)
        try:
            where, size = fetch(need, args.cache_dir)
        except Exception as e:  # noqa: BLE001 - one bad repo should not hide the others
            failed.append(need)
            print(f"  FAILED {need}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", flush=True)
            continue
        total += size
        print(f"  {need}: {human(size)} in {where}", flush=True)
    print(f"fetched {len(needs) - len(failed)} of {len(needs)} item(s), {human(total)}")
    if failed:
        print(f"lora-repro fetch: {len(failed)} failed: {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    home = f"HF_HOME={Path(args.cache_dir).resolve()} " if args.cache_dir else ""
    print(f"offline runs: {home}HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python experiments/train.py -m "
          f"{' '.join(args.overrides)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
