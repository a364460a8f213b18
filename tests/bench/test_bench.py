"""The benchmark at tiny sizes on CPU: JSON lines with every field, summary ratios, Table 1, cost table.
No timing is asserted: only that measurements exist, are positive and are reported consistently."""
import json
import subprocess
import sys

import pytest
import torch

from lora_repro.bench import report
from lora_repro.bench.cli import main
from lora_repro.bench.latency import (
    ADAPTERS,
    LATENCY_METHODS,
    LatencySetting,
    _prepared,
    adapter_count,
    adapter_r_for,
    row_method,
    runnable,
)
from lora_repro.bench.methods import (
    TRAIN_METHODS,
    MethodSpec,
    apply_spec,
    available,
    lora_options,
    method_options,
    parse_method,
    peft_target_modules,
)
from lora_repro.bench.models import build_model
from lora_repro.bench.throughput import ASSUMPTION, assumed_tokens_per_s, planner_tokens_per_s, table
from lora_repro.methods import METHODS, lora_layers

FIELDS = {"kind", "run_id", "model", "method", "impl", "batch", "seq", "precision", "tokens_per_s", "mean_ms",
          "std_ms", "trials", "device", "device_type", "torch", "transformers", "options"}


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_imports_without_hydra_datasets_wandb():
    code = ("import sys\nfor m in ('hydra', 'datasets', 'wandb', 'omegaconf'): sys.modules[m] = None\n"
            "import lora_repro.bench.cli, lora_repro.train.precision, lora_repro.bench.throughput")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_parse_method():
    assert parse_method("lora") == MethodSpec("lora")
    spec = parse_method('lora:r=8,alpha=16,targets=["q","k"]')
    assert spec.options == {"r": 8, "alpha": 16, "targets": ["q", "k"]} and spec.impl == "ours"
    assert parse_method("peft_lora").impl == "peft"
    with pytest.raises(ValueError, match="valid methods"):
        parse_method("lorax")
    with pytest.raises(ValueError, match="key=value"):
        parse_method("lora:8")


def test_every_benchmarked_method_is_registered():
    assert set(TRAIN_METHODS) - {"peft_lora"} <= set(METHODS)
    assert {row_method(m)[0] for m in LATENCY_METHODS} <= set(METHODS) and runnable(LATENCY_METHODS) == list(
        LATENCY_METHODS)
    assert available(["ft", "lora", "adapter_h", "prefix_layer", "lorax"]) == ["ft", "lora", "adapter_h",
                                                                               "prefix_layer"]


def test_method_options_are_a_table_not_a_branch():
    gpt2, bert = build_model("gpt2-medium", tiny=True), build_model("roberta-base", tiny=True)
    assert lora_options(gpt2) == {"targets": ["q", "v"], "r": 4, "alpha": 32}          # the paper's GPT-2 setting
    assert lora_options(gpt2, {"r": 2}) == {"targets": ["q", "v"], "r": 2, "alpha": 32}
    assert method_options(bert, "adapter_h", {"r": 3}) == {"r": 3} and method_options(bert, "ft") == {}
    _, config = apply_spec(gpt2, MethodSpec("lora"))
    assert (config["r"], config["alpha"]) == (4, 32)


def test_latency_rows_merge_through_the_capability():
    setting = LatencySetting(model="gpt2-medium", tiny=True)
    merged, config = _prepared(setting, "lora", 0, torch.device("cpu"))
    assert config["name"] == "lora" and all(layer.merged for _, layer in lora_layers(merged))
    unmerged, _ = _prepared(setting, "lora_unmerged", 0, torch.device("cpu"))
    layers = [layer for _, layer in lora_layers(unmerged)]
    assert layers and not any(layer.merged for layer in layers)
    assert all(b.abs().sum() > 0 for layer in layers for b in layer.lora_B.values())  # B given values
    assert row_method("lora_unmerged") == ("lora", True) and row_method("adapter_h") == ("adapter_h", False)


def test_peft_targets_are_the_fused_c_attn_on_gpt2():
    assert peft_target_modules(build_model("gpt2-medium", tiny=True), ["q", "v"]) == ["c_attn"]
    assert peft_target_modules(build_model("roberta-base", tiny=True), ["q", "v"]) == ["query", "value"]


def test_train_cli_writes_lines_and_summary(tmp_path, capsys):
    out = tmp_path / "bench"
    pytest.importorskip("peft")
    main(["train", "--tiny", "--model", "gpt2-medium", "--methods", "ft", "lora", "peft_lora", "--steps", "2",
          "--warmup", "1", "--out", str(out)])
    rows = lines(out / "train.jsonl")
    assert [r["method"] for r in rows] == ["ft", "lora", "peft_lora"]
    assert [r["impl"] for r in rows] == ["ours", "ours", "peft"]
    assert len({r["run_id"] for r in rows}) == 1
    for r in rows:
        assert FIELDS | {"peak_memory_bytes", "peak_memory_kind"} <= set(r), FIELDS - set(r)
        assert r["kind"] == "train" and r["tokens_per_s"] > 0 and r["peak_memory_bytes"] > 0
        assert r["peak_memory_kind"] == "cpu_rss" and r["trials"] == 2 and (r["batch"], r["seq"]) == (2, 32)
        assert r["model"] == "gpt2-medium-tiny" and r["tiny"] is True
    ft, lora, peft = rows
    assert lora["trainable_params"] < ft["trainable_params"] and peft["trainable_params"] < ft["trainable_params"]
    assert lora["method_config"]["r"] == 4 and lora["method_config"]["alpha"] == 32  # the paper's GPT-2 setting
    summary = (out / "summary.md").read_text()
    ratios = report.train_ratios(rows)
    assert ratios["lora_over_ft_tokens_per_s"] == pytest.approx(lora["tokens_per_s"] / ft["tokens_per_s"])
    assert f"lora_over_ft_tokens_per_s = {ratios['lora_over_ft_tokens_per_s']:.2f}" in summary
    assert "ours_over_peft_tokens_per_s" in summary


@pytest.mark.slow
def test_train_cli_bf16_ablation_on_an_encoder(tmp_path):
    out = tmp_path / "bench"
    main(["train", "--tiny", "--preset", "roberta-base", "--methods", "ft", "lora", "--precision", "bf16",
          "--ablate", "--steps", "2", "--warmup", "1", "--out", str(out)])
    rows = lines(out / "train.jsonl")
    assert [(r["method"], r["ablation"]) for r in rows] == [
        ("ft", "all_on"), ("lora", "all_on"), ("lora", "no_frozen_low_precision"), ("lora", "optimizer_loop"),
        ("lora", "eager_attention")]
    assert rows[2]["options"]["frozen_low_precision"] is False and rows[3]["options"]["optimizer"] == "loop"
    assert all(r["precision"] == "bf16" and r["final_loss"] == r["final_loss"] for r in rows)  # not NaN
    assert "one switched at a time" in (out / "summary.md").read_text()


def test_train_cli_rejects_unknown_method_and_preset(tmp_path):
    with pytest.raises(SystemExit, match="valid methods"):
        main(["train", "--tiny", "--methods", "lorax", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="valid: gpt2-medium"):
        main(["train", "--tiny", "--preset", "gpt2-xl", "--out", str(tmp_path)])


def test_latency_cli_writes_table1(tmp_path):
    out, tables = tmp_path / "bench", tmp_path / "tables"
    main(["latency", "--tiny", "--trials", "3", "--warmup", "1", "--out", str(out), "--tables", str(tables)])
    rows = lines(out / "latency.jsonl")
    methods = {r["method"] for r in rows}
    assert {"ft", "lora", "lora_unmerged"} <= methods
    assert set(ADAPTERS) <= methods
    for r in rows:
        assert FIELDS <= set(r) and r["kind"] == "latency" and r["trials"] == 3 and r["mean_ms"] > 0
    assert {(r["batch"], r["seq"]) for r in rows} == {(4, 64), (2, 32), (1, 16)}
    text = (tables / "table1.md").read_text()
    assert "lora_unmerged" in text and "overhead" in text
    over = report.latency_overheads(rows)
    assert over[(1, 16)]["ft"] == 0.0


def test_table1_sits_beside_the_paper_figures():
    """bench lines -> the one Table 1 (lora_repro.report.table1): paper rows, then the lines no paper row uses."""
    from lora_repro.report.table1 import build_table1, table1_markdown

    rows = [{"kind": "latency", "run_id": "r", "model": "gpt2-medium", "tiny": False, "device": "gpu",
             "precision": "fp32", "trials": 100, "batch": b, "seq": s, "method": m, "mean_ms": ms, "std_ms": 1.0,
             "adapter_params": None}
            for b, s, m, ms in [(1, 128, "ft", 20.0), (1, 128, "adapter_h", 26.0), (1, 128, "lora_unmerged", 21.0)]]
    text = table1_markdown(build_table1(rows))
    assert ("| 1 | 128 | 11M / — | AdapterH (adapter_h) | 26.00 ± 1.00 | 25.8 ± 2.2 | +0.2 | +30.0% / +30.3% "
            "| gpu, fp32, 100 trials, run r |") in text
    assert ("| 1 | 128 | 11M / — | Fine-Tune/LoRA (ft) | 20.00 ± 1.00 | 19.8 ± 2.7 | +0.2 |  "
            "| gpu, fp32, 100 trials, run r |") in text
    assert "| gpt2-medium | 1 | 128 | lora_unmerged | — | 21.00 ± 1.00 | +5.0% | gpu, fp32, 100 trials, run r |" in text


def test_adapter_bottleneck_matches_table1_params():
    """GPT-2 M (d=1024, 24 blocks): the r whose count is nearest |Θ| = 0.5M and 11M (counted by surgery)."""
    for method in ADAPTERS:
        for target in (500_000, 11_000_000):
            r, count = adapter_r_for("gpt2-medium", method, target)
            assert count == adapter_count("gpt2-medium", method, r)
            for other in (r - 1, r + 1):
                assert abs(count - target) <= abs(adapter_count("gpt2-medium", method, other) - target)


def test_cost_table_labels_assumptions_and_prefers_measurements(tmp_path):
    rows = table(tmp_path)
    assert all(r["source"].startswith("assumption") for r in rows)
    ft = {r["model"]: r["tokens_per_s"] for r in rows if r["method"] == "ft"}
    lora = {r["model"]: r["tokens_per_s"] for r in rows if r["method"] == "lora"}
    assert all(lora[m] > ft[m] for m in ft) and ft["roberta-base"] > ft["roberta-large"]
    assert assumed_tokens_per_s("gpt2-medium", "ft", 512) == pytest.approx(
        ft["gpt2-medium"], abs=1)
    measured = {"kind": "train", "run_id": "x", "model": "gpt2-medium", "method": "lora", "impl": "ours",
                "precision": "bf16", "device_type": "cuda", "device": "NVIDIA H100", "tiny": False, "batch": 8,
                "seq": 512, "tokens_per_s": 12345.0, "ablation": "all_on"}
    report.append_jsonl(tmp_path / "train.jsonl", measured)
    rows = {(r["model"], r["method"]): r for r in table(tmp_path)}
    assert rows[("gpt2-medium", "lora")]["tokens_per_s"] == 12345
    assert rows[("gpt2-medium", "lora")]["source"].startswith("measured: NVIDIA H100")
    assert rows[("gpt2-medium", "ft")]["source"] == ASSUMPTION.format(flops=200)
    assert planner_tokens_per_s(tmp_path) == {("gpt2-medium", "lora"): 12345.0}


def test_costs_cli(tmp_path, capsys):
    main(["costs", "--out", str(tmp_path)])
    assert "assumption" in capsys.readouterr().out
    assert (tmp_path / "throughput.csv").read_text().startswith("model,method,precision,batch,seq,tokens_per_s,source")


def test_repeats_are_interleaved_and_merged_by_median(tmp_path):
    out = tmp_path / "bench"
    main(["train", "--tiny", "--model", "roberta-base", "--methods", "ft", "lora", "--steps", "1", "--warmup", "0",
          "--repeat", "3", "--out", str(out)])
    rows = lines(out / "train.jsonl")
    assert [(r["method"], r["repeat"]) for r in rows] == [("ft", 0), ("lora", 0), ("ft", 1), ("lora", 1),
                                                          ("ft", 2), ("lora", 2)]
    merged = {r["method"]: r for r in report.merge_repeats(rows)}
    for m in ("ft", "lora"):
        tps = sorted(r["tokens_per_s"] for r in rows if r["method"] == m)
        assert merged[m]["tokens_per_s"] == tps[1] and merged[m]["repeats"] == 3
    assert report.train_ratios(rows)["lora_over_ft_tokens_per_s"] == pytest.approx(
        merged["lora"]["tokens_per_s"] / merged["ft"]["tokens_per_s"])
    assert "median over 3 interleaved repeats" in (out / "summary.md").read_text()


def test_summary_states_unmerged_overhead():
    rows = [{"kind": "latency", "run_id": "r", "model": "gpt2-medium", "tiny": True, "device": "cpu", "torch": "t",
             "transformers": "x", "precision": "fp32", "trials": 5, "batch": 1, "seq": 16, "method": m, "mean_ms": ms,
             "std_ms": 0.1} for m, ms in [("ft", 10.0), ("lora_unmerged", 12.0)]]
    assert "lora_unmerged overhead vs ft (same run): 1x16 +20.0%" in report.summary_markdown(rows)


def test_latency_lines_feed_the_project_table1():
    """lora_repro.report reads these lines: ft is its Fine-Tune/LoRA row, adapters matched by |Θ|."""
    from lora_repro.report.table1 import build_table1

    rows = [{"kind": "latency", "model": "gpt2-medium", "batch": 1, "seq": 128, "method": m, "mean_ms": ms,
             "std_ms": 0.5, "adapter_params": p} for m, ms, p in [("ft", 20.0, None), ("lora", 20.1, None),
                                                               ("adapter_h", 26.0, 10966224)]]
    built = {r["method"]: r for r in build_table1(rows) if (r["batch"], r["seq"]) == (1, 128)}
    assert built["Fine-Tune/LoRA"]["ours_ms"] == 20.0 and built["Fine-Tune/LoRA"]["ours_method"] == "ft"
    assert built["AdapterH"]["ours_overhead_pct"] == pytest.approx(100 * (26.0 / 20.0 - 1))
    assert built["lora"]["section"] == "other" and built["lora"]["ours_overhead_pct"] == pytest.approx(0.5)


def test_one_home_for_peak_memory_and_old_lines_still_read():
    """train/measure.py holds both peaks; lines written before the rename (peak_mem_*) still summarize."""
    from lora_repro.bench import measure as bench_measure
    from lora_repro.train import measure
    assert bench_measure.PeakMemory is measure.PeakMemory
    import torch
    with measure.PeakMemory(torch.device("cpu")) as peak:
        torch.ones(1_000_000).sum()
    # kinds and presence only: the sampled RSS and the kernel's lazily updated lifetime peak are not ordered
    assert peak.kind == "cpu_rss" and peak.bytes > 0 and measure.peak_memory(torch.device("cpu"))[1] == "cpu_rss"
    old = [{"kind": "train", "run_id": "r", "method": m, "impl": "ours", "tokens_per_s": t, "step_ms_median": 1.0,
            "peak_mem_bytes": b, "peak_mem_kind": "cuda"} for m, t, b in [("ft", 100.0, 4e9), ("lora", 150.0, 2e9)]]
    assert report.train_ratios(old) == {"lora_over_ft_tokens_per_s": 1.5, "lora_over_ft_peak_mem": 0.5}


def test_successors_are_benchmarked_at_loras_setting():
    """LoRA's successors run at LoRA's benchmark setting (MoRA at its budget: no alpha); their latency rows are
    accepted, merged where the method merges."""
    from lora_repro.bench.latency import SUCCESSOR_LATENCY, row_method
    from lora_repro.bench.methods import method_options
    from lora_repro.methods import capabilities
    from tests.helpers import tiny_model
    gpt2 = tiny_model("gpt2")
    for name in ("qlora", "dora", "rslora", "pissa", "loraplus"):
        assert method_options(gpt2, name) == method_options(gpt2, "lora")
    assert method_options(gpt2, "lora") == {"targets": ["q", "v"], "r": 4, "alpha": 32}
    assert method_options(gpt2, "mora") == {"targets": ["q", "v"], "r": 4, "kind": "rotation"}
    for row in SUCCESSOR_LATENCY:
        name, unmerged = row_method(row)
        assert unmerged or "merge" in capabilities(name), row
