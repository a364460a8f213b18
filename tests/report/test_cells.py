"""A paper cell counts only its preset's runs, seed aside (fidelity review W4): an ad-hoc run with other
hyperparameters is listed as "not counted" with the keys that differ; LoRA† shows LoRA's runs where the paper
reuses them; a cell shows the precision its runs used; copied rows name their source."""
import copy

from lora_repro import records
from lora_repro.report import build, cells, render, specs
from lora_repro.sweeps import compose as sweep
from tests.helpers import make_record


def _record(config, run_id, seed, value, precision="bf16", metric="BLEU"):
    config = {**copy.deepcopy(config), "seed": seed}
    rec = make_record(run_id, model=config["model"]["name"], task=config["task"]["name"],
                      method=config["method"]["name"], seed=seed, metric=metric, value=value,
                      r=config["method"].get("r"), alpha=config["method"].get("alpha"),
                      targets=tuple(config["method"].get("targets") or ()))
    rec.update(config=config, method_config=config["method"], precision=precision,
               run_id=records.run_identity(config))
    return rec


def test_an_ad_hoc_run_is_not_a_sixth_seed_and_says_what_differs():
    preset = cells.preset_cells(["table3"])
    lora = next(c for c, _ in preset if c["model"]["name"] == "gpt2-medium" and c["method"]["name"] == "lora")
    recs = [_record(lora, "", s, 70.0 + s) for s in (1, 2, 3)]
    ad_hoc = copy.deepcopy(lora)
    ad_hoc["trainer"]["epochs"] = 3
    ad_hoc["method"]["alpha"] = 16
    recs.append(_record(ad_hoc, "", 0, 10.0))
    spec = specs.table_spec(3)
    loose = build.table_rows(build.build_table(spec, recs))
    strict_table = build.build_table(spec, recs, preset)
    strict = build.table_rows(strict_table)

    def bleu(rows):
        return next(d for d in rows if d["model"] == "gpt2-medium" and d["method"] == "LoRA" and d["column"] == "BLEU")
    assert bleu(loose)["n"] == 4                          # the old rule: the ad-hoc run joins as a 4th seed
    assert bleu(strict)["n"] == 3 and bleu(strict)["ours"] == 72.0
    [miss] = [d for d in strict_table.not_counted if d["column"] == "BLEU"]
    assert miss["seed"] == 0 and miss["row"] == "LoRA" and miss["preset"] == "+experiment/table3=gpt2-medium_lora"
    assert any(d.startswith("trainer.epochs: 3 vs 5") for d in miss["differs"])
    assert any(d.startswith("method.alpha: 16 vs 32") for d in miss["differs"])
    text = render.to_markdown(strict_table)
    assert "Not counted (5):" in text and "trainer.epochs: 3 vs 5" in text   # one line per E2E column
    assert "| bf16 |" in text                                                  # the precision the runs used


def test_a_start_from_another_run_is_compared_by_that_runs_cell_not_its_path():
    src = {"model": {"name": "m"}, "task": {"name": "glue/mnli"}, "method": {"name": "lora"}, "seed": 1}
    keys = {records.run_identity(src): cells.cell_key(cells.seedless(src, {}))}
    other_seed = {**src, "seed": 2}
    keys[records.run_identity(other_seed)] = cells.cell_key(cells.seedless(other_seed, {}))
    dep = {**src, "task": {"name": "glue/rte"}, "results_dir": "/a",
           "method_init_from": f"/a/checkpoints/{records.run_identity(src)}/adapter"}
    dep2 = {**dep, "seed": 2, "results_dir": "/b",
            "method_init_from": f"/b/checkpoints/{records.run_identity(other_seed)}/adapter"}
    assert cells.seedless(dep, keys) == cells.seedless(dep2, keys)       # seed and results dir drop out
    unknown = {**dep, "method_init_from": "/a/checkpoints/0123456789abcdef/adapter"}
    assert cells.seedless(unknown, keys) != cells.seedless(dep, keys)


def test_lora_dagger_shows_the_lora_runs_on_mnli_sst2_cola_only():
    spec = specs.table_spec(2)
    base = {"model": {"name": "roberta-large"}, "method": {"name": "lora", "r": 8, "alpha": 16, "targets": ["q", "v"]},
            "trainer": {"epochs": 10}}
    lora = {t: {**base, "task": {"name": f"glue/{t}"}} for t in ("mnli", "qnli")}
    preset = [(c, cells.CellIdentity(cells.cell_key(cells.seedless(c, {})), {}, f"+experiment/table2=x/{t}"))
              for t, c in lora.items()]
    recs = [_record(lora[t], "", s, 90.0 + s, metric="accuracy") for t in ("mnli", "qnli") for s in (1, 2)]
    rows = {(d["method"], d["column"]): d for d in build.table_rows(build.build_table(spec, recs, preset))
            if d["model"] == "roberta-large"}
    assert rows[("LoRA", "MNLI-m")]["n"] == rows[("LoRA†", "MNLI-m")]["n"] == 2
    assert rows[("LoRA", "QNLI")]["n"] == 2 and rows[("LoRA†", "QNLI")]["n"] == 0   # not shared there


def test_the_authors_rows_run_once_and_copied_rows_are_labelled_with_their_source():
    stage1 = sweep.sweep_overrides(["+experiment=table2"])
    stage2 = sweep.sweep_overrides(["+experiment=table2_from_mnli"])
    baselines = sweep.sweep_overrides(["+experiment=table2_baselines"]) + \
        sweep.sweep_overrides(["+experiment=table2_baselines_from_mnli"])
    assert (len(stage1), len(stage2), len(baselines)) == (52 * 5, 9 * 5, 48 * 5)
    assert not any("lora_dagger/mnli" in " ".join(j) or "_ft/" in " ".join(j) for j in stage1 + stage2)
    text = render.to_markdown(build.build_table(specs.table_spec(2), []))
    assert "FT* (copied: Liu et al. 2019)" in text and "FT* (copied: He et al. 2021)" in text
    assert "BitFit* (copied: Zaken et al. 2021)" in text and "| MNLI-m |" in text
    assert "(copied: Li & Liang 2021)" in render.to_markdown(build.build_table(specs.table_spec(3), []))


def test_tables_count_the_runs_of_the_presets_as_launched_with_extra_overrides(tmp_path):
    """`make reproduce-table3 ARGS=trainer.epochs=3` ran every cell with 3 epochs: `lora-repro tables
    --preset-override trainer.epochs=3` (what the make target passes) counts those runs and no others."""
    from lora_repro import report

    preset = cells.preset_cells(["table3"], overrides=["trainer.epochs=3"])
    lora = next(c for c, _ in preset if c["model"]["name"] == "gpt2-medium" and c["method"]["name"] == "lora")
    assert lora["trainer"]["epochs"] == 3
    for seed in (1, 2):
        records.write_record(_record(lora, "", seed, 60.0 + seed), tmp_path)
    for extra, n in (([], "0"), (["--preset-override", "trainer.epochs=3"], "2")):
        assert report.main(["--results", str(tmp_path), "--tables", "3", *extra]) == 0
        text = (tmp_path / "tables" / "table3.md").read_text()
        row = next(line for line in text.splitlines() if "| LoRA |" in line and "GPT-2 M" in line)
        assert f"(n={n})" in row, (extra, row)
