"""`lora_repro.report` builds every table without torch (the layer rule: report reads records, paper/rows and
paths, never torch), so tables can be rebuilt on a machine without the training stack."""
import subprocess
import sys

CODE = r'''
import sys
sys.modules["torch"] = None          # any `import torch` now raises ImportError
import json, pathlib, tempfile
from lora_repro import records
from lora_repro.report import build, plots, render, specs, table1, write_tables

def rec(run_id, model, task, metrics, main, **method):
    return {"run_id": run_id, "created_at": "2026-01-01T00:00:00+00:00", "git_sha": None, "model": model,
            "task": task, "method": "lora", "r": method.get("r", 8), "alpha": 8, "targets": ["q", "v"], "seed": 1,
            "trainable_params": 1000, "total_params": 10000, "metrics": metrics, "main_metric": main,
            "peak_vram_bytes": 0, "tokens_per_s": 1.0, "train_wall_s": 1.0, "status": "finished",
            "config": {"method": {"name": "lora"}}}

# a: an extra row (no preset composed); b: a Table 3 paper row, so write_tables composes the table3 preset
# (report.cells) -- without torch too
recs = [rec("a", "tiny-roberta", "glue/mnli", {"accuracy": 87.0}, "accuracy"),
        rec("b", "gpt2-medium", "e2e", {"BLEU": 70.0}, "BLEU", r=4)]
for n in (2, 3, 4, 5, 6):
    text = render.to_markdown(build.build_table(specs.table_spec(n), recs))
    assert f"## Table {n}" in text, n
lines = [{"kind": "latency", "model": "gpt2-medium", "batch": 1, "seq": 128, "method": "ft", "mean_ms": 20.0}]
assert "## Table 1" in table1.table1_markdown(table1.build_table1(lines))
out = pathlib.Path(tempfile.mkdtemp())
for r in recs:
    records.write_record(r, out)
write_tables(out)
assert sorted(p.name for p in (out / "tables").glob("*.md")) == [f"table{n}.md" for n in range(1, 7)]
assert plots.rank_series(recs)
assert not [m for m, mod in sys.modules.items() if mod is not None and (m == "torch" or m.startswith("torch."))]
'''


def test_report_builds_every_table_with_torch_blocked():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
