"""One Table 1: `lora-repro bench latency` and `lora-repro tables` write the same table1.md from the same
bench lines, tiny lines never fill a paper row, and exactly one function in the package writes table1 files."""
import ast
import re
from pathlib import Path

from lora_repro import report
from lora_repro.bench.cli import main as bench

PACKAGE = Path(report.__file__).resolve().parent.parent
TABLE1_FILE = re.compile(r"^table1\.(md|tex|csv|\{)")


def test_bench_and_tables_write_the_same_table1(tmp_path):
    results = tmp_path / "results"
    bench(["latency", "--tiny", "--trials", "2", "--warmup", "0", "--methods", "ft", "lora_unmerged",
           "--out", str(results / "bench"), "--tables", str(results / "tables")])
    from_bench = {ext: (results / "tables" / f"table1.{ext}").read_text() for ext in ("md", "tex", "csv")}
    assert report.main(["--results", str(results), "--tables", "1"]) == 0
    from_tables = {ext: (results / "tables" / f"table1.{ext}").read_text() for ext in ("md", "tex", "csv")}
    assert from_bench == from_tables
    md = from_tables["md"]
    paper_rows = [line for line in md.split("### ")[0].splitlines() if re.match(r"\| \d+ \| \d+ \|", line)]
    assert len(paper_rows) == 9 and all("| — |" in line for line in paper_rows)   # tiny never passes for the paper
    assert "gpt2-medium-tiny (tiny: not the paper shape)" in md and "lora_unmerged" in md


def _writers_of_table1_files():
    """(module, function) of every function whose code names a table1 file (table1.md, f"table1.{ext}", ...)."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
                if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                    text = str(node.values[0].value) + "{"
                if text is not None and TABLE1_FILE.match(text):
                    found.add((str(path.relative_to(PACKAGE.parent)), fn.name))
    return found


def test_exactly_one_function_writes_table1_files():
    assert _writers_of_table1_files() == {("lora_repro/report/table1.py", "write_table1")}
