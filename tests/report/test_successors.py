"""The successors tables: records of the preset's settings land in their rows (median over seeds on GLUE, mean on
E2E), other settings of the same method do not, and a tiny model's records become extra rows."""
from lora_repro.paper.successors import reported
from lora_repro.report.successors import successors_spec, write_successors
from tests.helpers import make_record, write


def _rec(run_id, method, seed, value, *, model="roberta-base", task="glue/rte", r=8, kind=None, **kw):
    rec = make_record(run_id, model=model, task=task, method=method, seed=seed, value=value, r=r, **kw)
    rec["method_config"] = {"name": method, "r": r, "alpha": 8, "targets": ["q", "v"],
                            **({"kind": kind} if kind else {})}
    return rec


def test_records_fill_the_successor_rows(tmp_path):
    write(tmp_path, [
        _rec("a1", "dora", 1, 70.0), _rec("a2", "dora", 2, 72.0), _rec("a3", "dora", 3, 90.0),
        _rec("b1", "mora", 1, 66.0, kind="rotation"),
        _rec("c1", "mora", 1, 10.0, kind="sharing"),          # not the preset's MoRA: no row takes it
        _rec("d1", "dora", 1, 55.0, r=16),                     # another rank: not the row either
        _rec("e1", "qlora", 1, 60.0, model="tiny-roberta"),    # a tiny run: an extra row
        _rec("f1", "pissa", 1, 0.0, task="e2e", model="gpt2-medium", r=4, metrics={"BLEU": 68.5}, metric="BLEU"),
    ])
    paths = write_successors(tmp_path)
    glue = paths["glue"].read_text()
    rows = {line.split("|")[2].strip(): line for line in glue.splitlines() if line.startswith("| roberta-base")
            or line.startswith("| tiny-roberta")}
    assert "72.0 ± 11.0 (n=3)" in rows["DoRA"]                # median of 70, 72, 90
    assert "66.0 (n=1)" in rows["MoRA"] and "10.0" not in glue and "55.0" not in glue
    assert any(k.startswith("qlora") for k in rows)            # the tiny model's row
    assert glue.startswith("## Successors (GLUE): LoRA's successors at LoRA's budget: roberta-base")
    e2e = paths["e2e"].read_text()
    assert "68.5 (n=1)" in next(line for line in e2e.splitlines() if "| PiSSA" in line)


def test_every_row_is_a_successor_and_no_figure_is_invented():
    for which in ("glue", "e2e"):
        spec = successors_spec(which)
        assert [r.label for r in spec.rows] == ["LoRA", "QLoRA", "MoRA", "DoRA", "rsLoRA", "PiSSA", "LoRA+"]
        assert all(not r.paper for r in spec.rows)            # no successor paper reports these settings
    rows = reported()
    assert {r["method"] for r in rows} == {"qlora", "mora", "dora", "rslora", "pissa", "loraplus"}
    assert all(r["note"] and r["arxiv"] for r in rows) and not any(r["value"] for r in rows)
