"""notebooks/results.ipynb runs top to bottom (nbclient, the venv's python3 kernel) on hand-made records, from
notebooks/ as Jupyter starts it, with LORA_REPRO_RESULTS relative to the repository root as the README writes it."""
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import make_record, write

ROOT = Path(__file__).resolve().parents[2]


def execute(results, monkeypatch) -> str:
    """Run the notebook in a kernel started in notebooks/ with LORA_REPRO_RESULTS=`results`; its text output."""
    monkeypatch.setenv("LORA_REPRO_RESULTS", str(results))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    nb = nbformat.read(str(ROOT / "notebooks" / "results.ipynb"), as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    return "".join(o.get("text", "") + str(o.get("data", {}).get("text/markdown", ""))
                   for c in nb.cells for o in c.get("outputs", []))


def test_results_notebook_executes(tmp_path, monkeypatch):
    # tiny models: extra rows of the tables (hand-made records are no preset's runs, so a paper row would not count
    # them, and the notebook would compose every preset; tests/report/test_cells.py covers paper cells)
    write(tmp_path, [make_record(f"s{i}", model="tiny-roberta", seed=i, value=86.0 + i) for i in range(3)]
          + [make_record(f"t6{r}", model="tiny-gpt2", task="wikisql", r=r, targets=("q", "v"), value=60.0 + r,
                         seed=1, created_at=f"2026-01-0{r}T00:00:00+00:00") for r in (1, 2, 4)])
    (tmp_path / "runs" / "broken.json").write_text("{")
    before = sorted(p.name for p in (ROOT / "notebooks").iterdir())
    out = execute(os.path.relpath(tmp_path, ROOT), monkeypatch)   # relative to the repo root, not to notebooks/
    assert f"6 well-formed records in {tmp_path / 'runs'}" in out
    assert "broken.json" in out                        # the corrupt record is reported
    assert "## Table 2" in out and "| tiny-roberta | lora (r=8 alpha=8 targets=q,v) |" in out
    assert "87.0 ± 1.0 (n=3)" in out
    assert (tmp_path / "figures" / "rank_tiny-gpt2_wikisql.png").exists()
    assert sorted(p.name for p in (ROOT / "notebooks").iterdir()) == before   # nothing stray beside the notebook


@pytest.mark.slow
def test_results_notebook_says_when_it_finds_no_records_and_writes_nothing(tmp_path, monkeypatch):
    before = sorted(p.name for p in (ROOT / "notebooks").iterdir())
    out = execute(os.path.relpath(tmp_path / "empty", ROOT), monkeypatch)
    assert f"0 records in {tmp_path / 'empty' / 'runs'}: it does not exist" in out and "no figures" in out
    assert not (tmp_path / "empty").exists()
    assert sorted(p.name for p in (ROOT / "notebooks").iterdir()) == before
