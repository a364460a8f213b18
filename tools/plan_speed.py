"""How long composing a preset's jobs takes: one full Hydra composition per job (what `lora-repro plan` did)
against `sweeps.compose.preset_jobs` (one composition per set of config choices, value overrides such as the
seed applied afterwards). Checks that both give every job the same run id, then prints the times and ratio.

    PYTHONPATH=$PWD .venv/bin/python tools/plan_speed.py [preset ...]    (default: every Table 2 preset)
"""
from __future__ import annotations

import sys
import time

from lora_repro.sweeps import compose as sweep

DEFAULT = ("table2", "table2_from_mnli", "table2_baselines", "table2_baselines_from_mnli")


def main(presets: list[str]) -> int:
    with sweep.hydra_context():
        t0, c0 = time.perf_counter(), time.process_time()
        fast = [j.run_id for p in presets for j in sweep.preset_jobs(p)]
        t_fast, c_fast = time.perf_counter() - t0, time.process_time() - c0
        sweep._COMPOSED.clear()
        sweep._SOURCE_CACHE.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        slow = [sweep.run_id_of(sweep.resolved_config(o)) for p in presets
                for o in sweep.sweep_overrides([f"+experiment={p}"])]
        t_slow, c_slow = time.perf_counter() - t0, time.process_time() - c0
    assert slow == fast, "the two compositions disagree on some run id"
    print(f"{len(fast)} jobs of {', '.join(presets)}: one composition per job {t_slow:.1f} s wall / "
          f"{c_slow:.1f} s CPU, one per config choice {t_fast:.1f} s wall / {c_fast:.1f} s CPU; "
          f"ratio {t_slow / t_fast:.1f}x wall, {c_slow / c_fast:.1f}x CPU (same run ids)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(DEFAULT)))
