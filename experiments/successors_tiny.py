"""The successors table on CPU in minutes: every successor beside LoRA at LoRA's budget on tiny RoBERTa (RTE
fixture) and tiny GPT-2 (E2E fixture), the tiny trainer, through the same Hydra app and tables as the full preset.

    python experiments/successors_tiny.py --results /tmp/successors_tiny [--seeds 1 2]

Numbers from fixture data on random tiny models only show that every path runs end to end; they say nothing about
the methods (the full comparison is `+experiment=successors`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lora_repro.app import main as app
from lora_repro.paper.successors import SUCCESSORS
from lora_repro.report.successors import write_successors
from lora_repro.tasks.fixtures import write_fixture

SETUPS = {
    "glue": dict(model="tiny-roberta", task="glue/rte", r=8, alpha=8,
                 extra=["task.max_length=64"]),
    "e2e": dict(model="tiny-gpt2", task="e2e", r=4, alpha=32,
                extra=["task.max_length=96", "task.max_eval_samples=4", "task.generation.num_beams=2",
                       "task.generation.max_new_tokens=8", "trainer.epochs=1"]),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", required=True, type=Path)
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    args = p.parse_args(argv)
    for name, s in SETUPS.items():
        data = args.results / "data" / name
        if not data.exists():
            write_fixture(s["task"], data, n_train=64, n_eval=32)
        for seed in args.seeds:
            for method in SUCCESSORS:
                options = [f"method.r={s['r']}", "method.targets=[q,v]"]
                if method == "mora":   # MoRA has no scale (r̂ follows from r); the preset's operator
                    options.append("method.kind=rotation")
                else:
                    options.append(f"method.alpha={s['alpha']}")
                app([f"model={s['model']}", f"task={s['task']}", f"method={method}", "trainer=tiny", f"seed={seed}",
                     f"task.data_dir={data}", f"results_dir={args.results}", "logger=none", "progress_bar=false",
                     *options, *s["extra"]])
    for which, path in write_successors(args.results).items():
        print(f"successors {which}: {path}")
        print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
