"""Rank series come from every method whose records carry an integer r (no method name decides it)."""
from lora_repro.report import plots


def rec(method, r, value, targets=None, seed=1, status="finished"):
    return {"status": status, "method": method, "r": r, "alpha": None, "targets": targets, "seed": seed,
            "model": "gpt2-medium", "task": "wikisql", "main_metric": "accuracy", "metrics": {"accuracy": value},
            "config": {"method": {"name": method}}}


def test_rank_series_for_every_method_with_an_integer_r():
    series = plots.rank_series([
        rec("lora", 4, 60.0, ["v", "q"]), rec("lora", 4, 62.0, ["q", "v"], seed=2), rec("lora", 8, 63.0, ["q", "v"]),
        rec("adapter_h", 8, 55.0), rec("adapter_h", 64, 58.0),
        rec("ft", None, 70.0), rec("lora", 2, 10.0, ["q", "v"], status="failed"),
    ])[("gpt2-medium", "wikisql")]
    assert series == {"lora q,v": [(4, 61.0, 2), (8, 63.0, 1)], "adapter_h": [(8, 55.0, 1), (64, 58.0, 1)]}
