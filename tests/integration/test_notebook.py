"""notebooks/results.ipynb runs top to bottom (nbclient, the venv's python3 kernel) on hand-made records."""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.helpers import make_record, write

ROOT = Path(__file__).resolve().parents[2]


def test_results_notebook_executes(tmp_path, monkeypatch):
    write(tmp_path, [make_record(f"s{i}", seed=i, value=86.0 + i) for i in range(3)]
          + [make_record(f"t6{r}", model="gpt2-medium", task="wikisql", r=r, targets=("q", "v"), value=60.0 + r,
                         seed=1, created_at=f"2026-01-0{r}T00:00:00+00:00") for r in (1, 2, 4)])
    (tmp_path / "runs" / "broken.json").write_text("{")
    monkeypatch.setenv("LORA_REPRO_RESULTS", str(tmp_path))
    nb = nbformat.read(str(ROOT / "notebooks" / "results.ipynb"), as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    out = "".join(o.get("text", "") + str(o.get("data", {}).get("text/markdown", ""))
                  for c in nb.cells for o in c.get("outputs", []))
    assert "6 well-formed records" in out
    assert "broken.json" in out                        # the corrupt record is reported
    assert "## Table 2" in out and "87.0 ± 1.0 (n=3) / 87.5" in out
    assert (tmp_path / "figures" / "rank_gpt2-medium_wikisql.png").exists()
