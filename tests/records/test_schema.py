"""The record's shape has one home (`records.Record`): every field a reader reads is in it and is written by
`make_record` on a real tiny run under the same name; no ghost keys (e.g. the old `trainable_params_paper`,
read by tables, plots and the W&B summary but written by nothing)."""
import ast
import dataclasses
from pathlib import Path

import pytest

from lora_repro import records
from lora_repro.run import wandb_logger
from tests.run.test_record_pin import CONTROL, PINNED, _compose

PACKAGE = Path(records.__file__).resolve().parent
READERS = [PACKAGE / "records.py", PACKAGE / "run" / "wandb_logger.py",
           *sorted((PACKAGE / "report").glob("*.py")), *sorted((PACKAGE / "analysis").glob("*.py"))]
RECORD_NAMES = {"rec", "record"}     # what readers call a record


def _csv_rows(fn) -> set[str]:
    """Names a function binds to rows of a CSV (``for rec in csv.DictReader(f)``): paper data, not records."""
    out = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Call):
            func = node.iter.func
            if (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")) == "DictReader":
                out.add(node.target.id)
    return out


def fields_read() -> dict[str, set[str]]:
    """{field: {file:line, ...}} for every ``rec.get("field")`` / ``rec["field"]`` on a record-like name."""
    found: dict[str, set[str]] = {}
    for path in READERS:
        tree = ast.parse(path.read_text())
        for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda))]:
            names = RECORD_NAMES - _csv_rows(fn)
            for node in ast.walk(fn):
                key = None
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                        and isinstance(node.func.value, ast.Name) and node.func.value.id in names and node.args
                        and isinstance(node.args[0], ast.Constant)):
                    key = node.args[0].value
                elif (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in names
                      and isinstance(node.slice, ast.Constant)):
                    key = node.slice.value
                if isinstance(key, str):
                    found.setdefault(key, set()).add(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_every_field_a_reader_reads_is_in_the_schema():
    read = fields_read()
    assert {"metrics", "main_metric", "trainable_params", "status"} <= set(read)   # the walk finds the readers
    ghosts = {k: sorted(v) for k, v in read.items() if k not in records.RECORD_SCHEMA}
    assert not ghosts, f"record fields read but not in records.Record: {ghosts}"
    assert set(wandb_logger.SUMMARY_KEYS) <= set(records.RECORD_SCHEMA)
    assert set(records.RECORD_FIELDS) <= set(records.RECORD_SCHEMA)
    assert all(meaning.strip() for meaning in records.RECORD_SCHEMA.values())


@pytest.fixture(scope="module")
def tiny_record(tmp_path_factory):
    from lora_repro.run import run
    from lora_repro.tasks.fixtures import write_fixture

    pin, tmp = PINNED["glue"], tmp_path_factory.mktemp("schema")
    write_fixture(pin["args"][1].split("=", 1)[1], tmp / "data", n_train=32, n_eval=16)
    return run(_compose([*pin["args"], f"task.data_dir={tmp / 'data'}", f"results_dir={tmp / 'results'}", *CONTROL]))


def test_make_record_writes_the_schema_and_what_readers_read(tiny_record):
    always = [f.name for f in dataclasses.fields(records.Record) if f.default is not records.OMIT]
    optional = set(records.RECORD_SCHEMA) - set(always)
    assert list(tiny_record)[:len(always)] == always                 # every non-optional field, in schema order
    assert set(tiny_record) <= set(records.RECORD_SCHEMA), set(tiny_record) - set(records.RECORD_SCHEMA)
    unwritten = {k: sorted(v) for k, v in fields_read().items() if k not in tiny_record and k not in optional}
    assert not unwritten, f"read but not written by make_record: {unwritten}"
    assert records.trainable_params(tiny_record) == PINNED["glue"]["trainable_params"]
    assert records.metric_value(tiny_record) == pytest.approx(PINNED["glue"]["metrics"]["accuracy"])
    assert records.is_finished(tiny_record) and records.method_options(tiny_record)["r"] == tiny_record["r"]
