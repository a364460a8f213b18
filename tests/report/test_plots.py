"""Figures a reader can trust at a glance: rank series come from every method whose records carry an integer r
(no method name decides it); a series is one table row (a LoRA run started from another run's adapter is not
merged into plain LoRA); every series has its own marker; the axes name the metric; chance is drawn."""
import pytest

from lora_repro.report import plots


def rec(method, r, value, targets=None, seed=1, status="finished", init_from=None, params=None, task="wikisql",
        metric="accuracy", model="gpt2-medium"):
    return {"status": status, "method": method, "r": r, "alpha": None, "targets": targets, "seed": seed,
            "model": model, "task": task, "main_metric": metric, "metrics": {metric: value},
            "trainable_params": params, "config": {"method": {"name": method}, "method_init_from": init_from}}


def test_rank_series_for_every_method_with_an_integer_r():
    series = plots.rank_series([
        rec("lora", 4, 60.0, ["v", "q"]), rec("lora", 4, 62.0, ["q", "v"], seed=2), rec("lora", 8, 63.0, ["q", "v"]),
        rec("adapter_h", 8, 55.0), rec("adapter_h", 64, 58.0),
        rec("ft", None, 70.0), rec("lora", 2, 10.0, ["q", "v"], status="failed"),
    ])[("gpt2-medium", "wikisql")]
    assert series == {"lora q,v": [(4, 61.0, 2), (8, 63.0, 1)], "adapter_h": [(8, 55.0, 1), (64, 58.0, 1)]}


def test_a_run_started_from_another_runs_adapter_is_its_own_series():
    """The review's STS-B LoRA point was the median of the stage-1 run (24.0) and the MNLI-initialised one (29.7)."""
    recs = [rec("lora", 8, 24.0, ["q", "v"], task="glue/stsb", metric="pearson", params=2048),
            rec("lora", 8, 29.7, ["q", "v"], task="glue/stsb", metric="pearson", params=2048,
                init_from="results/checkpoints/abc/adapter")]
    key = ("gpt2-medium", "glue/stsb")
    assert plots.budget_points(recs)[key] == {"lora": [(2048.0, 24.0, 1)],
                                              "lora [init from another run]": [(2048.0, 29.7, 1)]}
    assert plots.rank_series(recs)[key] == {"lora q,v": [(8, 24.0, 1)],
                                            "lora q,v [init from another run]": [(8, 29.7, 1)]}


def test_every_series_has_its_own_marker():
    labels = [f"method{i}" for i in range(len(plots.MARKERS))]
    assert len(set(plots.marker_of(labels).values())) == len(labels)


@pytest.mark.parametrize(("task", "metric", "chance"), [
    ("glue/rte", "accuracy", 50.0), ("glue/mnli", "accuracy", 100 / 3), ("demo/sentiment", "accuracy", 50.0),
    ("glue/stsb", "pearson", 0.0), ("glue/cola", "matthews", 0.0), ("e2e", "BLEU", None),
    ("wikisql", "accuracy", None), ("no/such-task", "accuracy", None)])
def test_chance_level(task, metric, chance):
    assert plots.chance_level(task, metric) == pytest.approx(chance) if chance is not None else \
        plots.chance_level(task, metric) is None


def test_the_y_axis_names_the_metric_and_says_median_only_with_seeds():
    assert plots.ylabel("pearson", "glue/stsb", 1) == "pearson on glue/stsb"
    assert "median over seeds" in plots.ylabel("accuracy", "glue/rte", 3)


def test_rank_figures_only_where_a_series_has_two_ranks(tmp_path):
    recs = [rec("lora", 8, 60.0, ["q", "v"], params=10, task="glue/rte"),
            rec("lora", 8, 61.0, ["q", "v"], params=10, task="glue/mrpc"),
            rec("lora", 64, 62.0, ["q", "v"], params=80, task="glue/mrpc")]
    names = sorted(p.name for p in plots.write_figures(tmp_path, tmp_path / "fig", recs))
    assert names == ["budget_gpt2-medium_glue-mrpc.png", "budget_gpt2-medium_glue-rte.png",
                     "rank_gpt2-medium_glue-mrpc.png"]
