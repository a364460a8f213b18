"""`lora-repro`: one console command, one subcommand per job. Each subcommand lives in its own
module and is imported only when used, so `lora-repro params` works without hydra or wandb."""
from __future__ import annotations

import importlib
import sys

# subcommand -> (module with `main(argv)`, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "params": ("lora_repro.paper.params", "trainable-parameter counts of the paper's tables 2, 3, 4"),
    "train": ("lora_repro.app", "train one run: Hydra overrides, e.g. model=roberta-base task=glue/rte method=lora"),
    "tables": ("lora_repro.report", "rebuild the paper's Tables 1-6 (md/csv/tex) from results/runs and results/bench"),
    "successors": ("lora_repro.report.successors",
                   "LoRA's successors beside LoRA at its budget (GLUE, E2E tables) from results/runs"),
    "plots": ("lora_repro.report.plots", "rank-sweep and parameter-budget figures from results/runs"),
    "plan": ("lora_repro.sweeps.plan", "a preset's runs, how many are finished or failed, estimated GPU-hours"),
    "bench": ("lora_repro.bench.cli",
              "speed and memory: training tokens/s + peak memory per method (ours vs PEFT), Table 1 latency"),
    "validate": ("lora_repro.sweeps.guard",
                 "validate every job of a sweep (e.g. +experiment=table2 seed=1,2) without launching"),
    "faults": ("tools/faults.py", "fault-injection suite (a checkout's tools/): kill/crash/corrupt runs and sweeps"),
    "analyze": ("lora_repro.analysis.cli",
                "the paper's Sec 7 analyses: subspace similarity, amplification, rank selection"),
    "fetch": ("lora_repro.sweeps.fetch", "download the models, tokenizers and datasets a sweep needs into the "
              "Hugging Face cache (login node), for compute nodes without internet"),
    "fixture": ("lora_repro.tasks.fixtures", "write a task's fixture data (hub schema) to a directory"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: lora-repro <command> [args]\n\ncommands:")
        for name, (_, help_) in SUBCOMMANDS.items():
            print(f"  {name:<12} {help_}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"lora-repro: unknown command {name!r}; valid commands: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    target = SUBCOMMANDS[name][0]
    if target.endswith(".py"):      # test tooling that lives beside the package in a checkout, not in it
        return _run_checkout_script(target, rest)
    module = importlib.import_module(target)
    return int(module.main(rest) or 0)


def _run_checkout_script(relative: str, argv: list[str]) -> int:
    import runpy

    from .paths import REPO_DIR
    script = REPO_DIR / relative
    if not script.is_file():
        print(f"lora-repro: {relative} is not here ({script}); it ships with a checkout of the repository, "
              "not with an installed package", file=sys.stderr)
        return 2
    sys.argv = [str(script), *argv]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
