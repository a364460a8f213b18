"""Tables from hand-made records: medians, ± std, n, missing cells, corrupt records, deltas vs the paper."""
import csv
import io
import json
import statistics

import pytest

from lora_repro import report
from lora_repro.report import build, render, specs, table1
from tests.helpers import make_record, write


def long_rows(tmp_path, number):
    t = build.build_table(specs.table_spec(number), build.load_finished(tmp_path))
    return {(d["model"], d["method"], d["column"]): d for d in build.table_rows(t)}


def test_median_std_n_and_delta_vs_paper(tmp_path):
    vals = [86.0, 87.0, 88.0, 90.0, 85.0]
    write(tmp_path, [make_record(f"m{i}", seed=i, value=v) for i, v in enumerate(vals)])
    d = long_rows(tmp_path, 2)[("roberta-base", "LoRA", "MNLI-m")]
    assert d["n"] == 5
    assert d["ours"] == pytest.approx(statistics.median(vals)) == pytest.approx(87.0)
    assert d["std"] == pytest.approx(statistics.stdev(vals))
    assert d["paper"] == pytest.approx(87.5) and d["paper_pm"] == pytest.approx(0.3)
    assert d["delta"] == pytest.approx(87.0 - 87.5)
    assert d["params"] == 294912  # the paper's counting (head left out)


def test_missing_cells_failed_records_and_avg(tmp_path):
    write(tmp_path, [make_record("a", value=80.0), make_record("b", task="glue/sst2", status="failed", metrics={})])
    rows = long_rows(tmp_path, 2)
    assert rows[("roberta-base", "LoRA", "SST-2")]["n"] == 0          # failed = missing
    assert rows[("roberta-base", "LoRA", "SST-2")]["ours"] is None
    assert rows[("roberta-base", "LoRA", "Avg")]["ours"] is None      # not all 8 tasks present
    assert rows[("roberta-large", "LoRA", "MNLI-m")]["n"] == 0          # paper row without records
    md = (tmp_path / "x.md")
    md.write_text(render.to_markdown(build.build_table(specs.table_spec(2), build.load_finished(tmp_path))))
    text = md.read_text()
    assert "— (n=0) / 95.1" in text                                  # SST-2 LoRA: missing, paper beside it
    assert "80.0 (n=1) / 87.5, Δ -7.5" in text


def test_avg_is_mean_of_the_eight_task_cells(tmp_path):
    values = dict(zip(specs.GLUE_TASKS, [80.0, 90.0, 85.0, 60.0, 91.0, 88.0, 70.0, 89.0]))
    recs = []
    for task, v in values.items():
        for seed, dv in enumerate([-1.0, 0.0, 2.0]):
            recs.append(make_record(f"{task}{seed}", task=f"glue/{task}", seed=seed, value=v + dv))
    write(tmp_path, recs)
    d = long_rows(tmp_path, 2)[("roberta-base", "LoRA", "Avg")]
    assert d["ours"] == pytest.approx(statistics.fmean(values.values()))
    assert d["delta"] == pytest.approx(statistics.fmean(values.values()) - 87.2)


def test_corrupt_record_reported_and_skipped(tmp_path, capsys):
    write(tmp_path, [make_record("good", model="tiny-roberta", value=88.0)])   # an extra row: no preset composed
    bad = tmp_path / "runs" / "broken.json"
    bad.write_text("{not json")
    (tmp_path / "runs" / "partial.json").write_text(json.dumps({"run_id": "partial", "status": "finished"}))
    out = tmp_path / "tables"
    report.write_tables(tmp_path, out, [2])
    err = capsys.readouterr().err
    assert str(bad) in err and "not valid JSON" in err
    assert "partial.json" in err and "missing field" in err
    rows = list(csv.DictReader(io.StringIO((out / "table2.csv").read_text())))
    mnli = [r for r in rows if r["model"] == "tiny-roberta" and r["method"].startswith("lora")
            and r["column"] == "MNLI-m"][0]
    assert mnli["n"] == "1" and float(mnli["ours"]) == 88.0
    assert (out / "table2.md").exists() and (out / "table2.tex").exists()


def adapter_d(run_id, r, value, drop=6):
    rec = make_record(run_id, method="adapter_d", r=r, value=value)
    rec["config"]["method"]["drop"] = drop
    rec["method_config"] = {**rec["config"]["method"], "base": "houlsby", "nonlinearity": "relu"}  # as the app writes
    return rec


def test_rows_are_told_apart_by_options_and_protocol(tmp_path):
    write(tmp_path, [
        make_record("l", model="roberta-large", value=90.0, alpha=16),
        make_record("ld", model="roberta-large", value=89.0, alpha=16, protocol="houlsby"),
        make_record("p64", model="roberta-large", method="adapter_p", r=64, value=70.0, protocol="houlsby"),
        make_record("p16", model="roberta-large", method="adapter_p", r=16, value=71.0, protocol="houlsby"),
        adapter_d("d16", r=16, value=60.0),
        adapter_d("d48", r=48, value=61.0),
        adapter_d("d32", r=32, value=62.0),             # no paper row: not in the table
        adapter_d("d16x", r=16, value=63.0, drop=0),     # other options than the paper row's: not in the table
    ])
    rows = long_rows(tmp_path, 2)
    assert rows[("roberta-large", "LoRA", "MNLI-m")]["ours"] == 90.0
    assert rows[("roberta-large", "LoRA†", "MNLI-m")]["ours"] == 89.0
    assert rows[("roberta-large", "AdptP† (3.0M)", "MNLI-m")]["ours"] == 70.0
    assert rows[("roberta-large", "AdptP† (0.8M)", "MNLI-m")]["ours"] == 71.0
    assert rows[("roberta-base", "AdptD (0.3M)", "MNLI-m")]["ours"] == 60.0
    assert rows[("roberta-base", "AdptD (0.9M)", "MNLI-m")]["ours"] == 61.0
    assert not any(k[2] == "MNLI-m" and v["ours"] in (62.0, 63.0) for k, v in rows.items())


def test_extra_rows_for_models_the_paper_lacks(tmp_path):
    write(tmp_path, [make_record("t1", model="tiny-roberta", seed=1, value=40.0),
                     make_record("t2", model="tiny-roberta", seed=2, value=50.0)])
    rows = long_rows(tmp_path, 2)
    extra = [v for k, v in rows.items() if k[0] == "tiny-roberta" and k[2] == "MNLI-m"]
    assert len(extra) == 1 and extra[0]["ours"] == 45.0 and extra[0]["n"] == 2 and extra[0]["paper"] is None


def test_duplicate_seed_keeps_newest(tmp_path, capsys):
    write(tmp_path, [make_record("old", value=10.0, created_at="2026-01-01T00:00:00+00:00"),
                     make_record("new", value=20.0, created_at="2026-02-01T00:00:00+00:00")])
    t = build.build_table(specs.table_spec(2), build.load_finished(tmp_path))
    d = {(x["model"], x["method"], x["column"]): x for x in build.table_rows(t)}[("roberta-base", "LoRA", "MNLI-m")]
    assert d["ours"] == 20.0 and d["n"] == 1
    assert any("replaces older old" in w for w in t.warnings)


def test_table3_mean_over_seeds_named_metrics(tmp_path):
    m = lambda b: {"BLEU": b, "NIST": 8.5, "METEOR": 46.0, "ROUGE-L": 71.0, "CIDEr": 2.5}  # noqa: E731
    write(tmp_path, [make_record(f"e{i}", model="gpt2-medium", task="e2e", r=4, alpha=32, seed=i, metric="BLEU",
                                 metrics=m(b)) for i, b in enumerate([69.0, 70.0, 74.0])])
    rows = long_rows(tmp_path, 3)
    assert rows[("gpt2-medium", "LoRA", "BLEU")]["ours"] == pytest.approx(71.0)  # mean, not median
    assert rows[("gpt2-medium", "LoRA", "CIDEr")]["delta"] == pytest.approx(2.5 - 2.53)


def test_tables_456_on_gpt2_medium(tmp_path):
    write(tmp_path, [
        make_record("w", model="gpt2-medium", task="wikisql", r=4, targets=("q", "v"), value=60.0),
        make_record("s", model="gpt2-medium", task="samsum", r=1, targets=("q", "v"), metric="rougeL",
                    metrics={"rouge1": 40.0, "rouge2": 15.0, "rougeL": 30.0}),
        make_record("n", model="gpt2-medium", task="gpt2/mnli", r=64, targets=("q", "k", "v", "o"), value=80.0),
    ])
    t4, t5, t6 = (long_rows(tmp_path, n) for n in (4, 5, 6))
    assert t4[("gpt2-medium", "LoRA (4.7M)", "SAMSum R2")]["ours"] == 15.0
    assert t5[("gpt2-medium", "LoRA Wq,Wv r=4", "WikiSQL")]["ours"] == 60.0
    # GPT-2 M vs GPT-3 175B: the paper's figure beside ours, no Δ (review D9)
    cell = t6[("gpt2-medium", "LoRA Wq,Wk,Wv,Wo r=64", "MultiNLI")]
    assert cell["delta"] is None and cell["paper"] == pytest.approx(91.4) and cell["ours"] == 80.0
    for n in (4, 5, 6):
        text = render.to_markdown(build.build_table(specs.table_spec(n), build.load_finished(tmp_path)))
        assert "Δ" not in text.split("Cells:")[1].split("\n")[0].replace("no Δ", ""), n
        assert ", Δ " not in text, n
    assert "80.0 (n=1) / 91.4 |" in render.to_markdown(build.build_table(specs.table_spec(6),
                                                                         build.load_finished(tmp_path)))


def test_table1_from_bench_lines(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    lines = [dict(kind="latency", model="gpt2-medium", batch=1, seq=128, method="ft", mean_ms=20.0, std_ms=1.0),
             dict(kind="latency", model="gpt2-medium", batch=1, seq=128, method="adapter_h", mean_ms=25.0, std_ms=1.0,
                  adapter_params=11_000_000),
             dict(kind="throughput", model="gpt2-medium", tokens_per_s=5.0)]
    (bench / "latency.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    rows, problems = table1.load_latency(bench)
    assert len(rows) == 2 and len(problems) == 1
    t1 = {(d["batch"], d["seq"], d["method"]): d for d in table1.build_table1(rows)}
    assert t1[(1, 128, "AdapterH")]["ours_overhead_pct"] == pytest.approx(25.0)
    assert t1[(1, 128, "AdapterH")]["delta_ms"] == pytest.approx(25.0 - 25.8)
    assert t1[(32, 512, "AdapterL")]["ours_ms"] is None


def test_cli_writes_all_tables_and_rejects_bad_numbers(tmp_path, capsys):
    write(tmp_path, [make_record("a")])
    assert report.main(["--results", str(tmp_path), "--print", "2"]) == 0
    for n in range(1, 7):
        for ext in ("md", "csv", "tex"):
            assert (tmp_path / "tables" / f"table{n}.{ext}").exists()
    assert "## Table 2" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        report.main(["--results", str(tmp_path), "--tables", "9"])


def test_odd_and_tampered_records_are_reported_and_skipped_not_fatal(tmp_path, capsys):
    """Review F6-F12: each of these killed every table with a traceback or landed in the wrong cell. (A model the
    paper lacks: its extra row counts what it gets, no preset identity is composed.)"""
    TINY = "tiny-roberta"
    good = make_record("good", task="glue/sst2", model=TINY, value=90.0)
    runs = tmp_path / "runs"
    write(tmp_path, [good])
    odd = {
        "nan": ({**make_record("nan", task="glue/sst2", model=TINY, seed=2), "metrics": {"accuracy": float("nan")}},
                "not finite numbers"),
        "abc": ({**make_record("abc", task="glue/sst2", model=TINY, seed=3), "metrics": {"accuracy": "abc"}},
                "not finite numbers"),
        "listseed": (make_record("listseed", task="glue/sst2", model=TINY, seed=[1]), "seed [1] is not an integer"),
        "edited_task": ({**make_record("edited_task", task="glue/sst2", model=TINY, seed=4), "task": "glue/mnli"},
                        "task 'glue/mnli' disagrees with its config's 'glue/sst2'"),
        "edited_seed": ({**make_record("edited_seed", task="glue/sst2", model=TINY, seed=0, value=99.9), "seed": 1},
                        "seed 1 disagrees with its config's 0"),
        "stray_copy": (make_record("good", task="glue/sst2", model=TINY, seed=5),
                       "is not the file's name 'stray_copy'"),
    }
    for name, (rec, _) in odd.items():
        (runs / f"{name}.json").write_text(json.dumps(rec))
    (runs / "dangling.json").symlink_to(runs / "nowhere")
    (runs / "adir.json").mkdir()
    report.write_tables(tmp_path, tmp_path / "tables", [2])
    err = capsys.readouterr().err
    for name, (_, why) in odd.items():
        assert f"{runs / name}.json: " in err and why in err, name
    assert f"{runs / 'dangling.json'}: cannot be read: FileNotFoundError" in err
    assert f"{runs / 'adir.json'}: cannot be read: IsADirectoryError" in err
    rows = list(csv.DictReader(io.StringIO((tmp_path / "tables" / "table2.csv").read_text())))
    cell = {r["column"]: r for r in rows if r["model"] == TINY and r["method"].startswith("lora")}
    assert (cell["SST-2"]["n"], float(cell["SST-2"]["ours"])) == ("1", 90.0) and cell["MNLI-m"]["n"] == "0"


def test_tables_that_cannot_be_written_say_where_and_point_to_out(tmp_path, capsys):
    """Review K12: a results dir the user cannot write (read-only, a colleague's) gave a traceback."""
    write(tmp_path, [make_record("a", value=80.0)])
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    assert report.main(["--results", str(tmp_path), "--out", str(blocker / "tables"), "--tables", "2"]) == 2
    err = capsys.readouterr().err
    assert str(blocker / "tables") in err and "pass --out DIR" in err
    assert report.main(["--results", str(tmp_path), "--out", str(tmp_path / "elsewhere"), "--tables", "2"]) == 0


def test_the_demo_table_puts_the_random_body_control_beside_the_methods(tmp_path, capsys):
    """`make demo`'s table (`lora-repro tables --tables demo`): a row per (model, method options) of the demo
    task, the held-out words beside the training words; no paper rows, no other task."""
    def demo(run_id, model, method, heldout, seen, **kw):
        return make_record(run_id, model=model, task="demo/sentiment", method=method,
                           metrics={"accuracy": heldout, "seen/accuracy": seen}, **kw)
    write(tmp_path, [demo("a", "minilm", "ft", 99.0, 100.0, r=None, params=22_713_216),
                     demo("b", "minilm", "lora", 97.0, 99.0, params=73_728),
                     demo("c", "minilm-random", "ft", 51.0, 95.0, r=None, params=22_713_216),
                     make_record("d", task="glue/rte")])
    assert report.main(["--results", str(tmp_path), "--tables", "demo", "--print", "demo"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "tables" / "demo.md").exists() and (tmp_path / "tables" / "demo.csv").exists()
    assert "## Table 'demo' (not in the paper)" in out
    lines = [line for line in out.splitlines() if line.startswith("| minilm")]
    assert lines == ["| minilm | ft | 22.71M / — | — | 99.0 (n=1) | 100.0 (n=1) |",       # — : no precision recorded
                     "| minilm | lora (r=8 alpha=8 targets=q,v) | 73,728 / — | — | 97.0 (n=1) | 99.0 (n=1) |",
                     "| minilm-random | ft | 22.71M / — | — | 51.0 (n=1) | 95.0 (n=1) |"]


def test_the_tables_option_names_the_valid_tables():
    with pytest.raises(SystemExit):
        report.main(["--tables", "2,dmeo"])
