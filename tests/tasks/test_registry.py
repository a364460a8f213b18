"""Task registry, hub loading path (monkeypatched) and schema errors."""
import json

import pytest

from lora_repro.tasks import TASKS, TaskConfigError, get_task
from lora_repro.tasks.fixtures import write_fixture

PAPER_TASKS = {"glue/mnli", "glue/sst2", "glue/mrpc", "glue/cola", "glue/qnli", "glue/qqp", "glue/rte", "glue/stsb",
               "e2e", "wikisql", "samsum", "gpt2/mnli"}
OUR_TASKS = {"demo/sentiment"}     # not in the paper: the CPU demo's task


def test_every_paper_task_is_registered():
    assert PAPER_TASKS <= set(TASKS)


def test_unknown_task_lists_valid_names():
    with pytest.raises(TaskConfigError) as e:
        get_task("glue/mnli_typo")
    assert "glue/mnli_typo" in str(e.value)
    for name in PAPER_TASKS:
        assert name in str(e.value)


@pytest.mark.parametrize("name,path,config,revision", [
    ("glue/mnli", "nyu-mll/glue", "mnli", None), ("glue/stsb", "nyu-mll/glue", "stsb", None),
    ("gpt2/mnli", "nyu-mll/glue", "mnli", None), ("e2e", "tuetschek/e2e_nlg", None, "refs/convert/parquet"),
    ("wikisql", "Salesforce/wikisql", None, "refs/convert/parquet"), ("samsum", "knkarthick/samsum", None, None)])
def test_load_none_goes_to_the_hub(monkeypatch, name, path, config, revision):
    import datasets
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or "DATASET")
    assert get_task(name).load(None) == "DATASET"
    assert calls == [((path, config), {"revision": revision} if revision else {})]


@pytest.mark.parametrize("name", sorted(PAPER_TASKS))
def test_task_declares_a_consistent_contract(name):
    t = get_task(name)
    assert t.kind in ("classification", "regression", "generation")
    assert t.main_split == t.eval_splits[0]
    assert t.num_labels == (1 if t.kind == "regression" else len(t.label_names))


def test_missing_split_file_names_split_and_expected_files(tmp_path):
    write_fixture("glue/mnli", tmp_path, 4, 4)
    (tmp_path / "validation_mismatched.jsonl").unlink()
    with pytest.raises(TaskConfigError) as e:
        get_task("glue/mnli").load(tmp_path)
    msg = str(e.value)
    assert "validation_mismatched" in msg and ".jsonl" in msg and ".parquet" in msg and str(tmp_path) in msg


def test_missing_directory(tmp_path):
    with pytest.raises(TaskConfigError, match="does not exist"):
        get_task("glue/rte").load(tmp_path / "nope")


def test_missing_column_names_file_and_schema(tmp_path):
    write_fixture("glue/rte", tmp_path, 4, 4)
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "sentence2"}) + "\n"
                                                  for r in rows))
    with pytest.raises(TaskConfigError) as e:
        get_task("glue/rte").load(tmp_path)
    assert "train.jsonl" in str(e.value) and "sentence2" in str(e.value) and "sentence1" in str(e.value)


def test_mixed_formats_are_refused(tmp_path):
    write_fixture("samsum", tmp_path, 4, 4)
    write_fixture("samsum", tmp_path / "csv", 4, 4, fmt="csv")
    (tmp_path / "test.jsonl").unlink()
    (tmp_path / "csv" / "test.csv").rename(tmp_path / "test.csv")
    with pytest.raises(TaskConfigError, match="mixed file formats"):
        get_task("samsum").load(tmp_path)


def test_merge_split_metrics_keeps_main_split_keys():
    t = get_task("glue/mnli")
    merged = t.merge_split_metrics({"validation_matched": {"accuracy": 87.5},
                                    "validation_mismatched": {"accuracy": 86.9}})
    assert merged == {"accuracy": 87.5, "validation_mismatched/accuracy": 86.9}
    assert t.main_metric in merged


@pytest.mark.parametrize("name,main", [("glue/mnli", "accuracy"), ("glue/cola", "matthews"), ("glue/stsb", "pearson"),
                                       ("glue/mrpc", "accuracy"), ("e2e", "BLEU"), ("wikisql", "lf_accuracy"),
                                       ("samsum", "rouge1"), ("gpt2/mnli", "accuracy")])
def test_headline_metrics_follow_the_paper(name, main):
    t = get_task(name)
    assert t.main_metric == main
    if name.startswith("glue/"):
        assert t.metrics[0] == main


ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
PACKAGE_TASKS = {n for n, cls in TASKS.items() if cls.__module__.startswith("lora_repro.tasks.")}


def test_every_module_of_the_package_is_imported():
    """Registration walks the package: a new module registers its tasks without an import line to edit."""
    import pkgutil
    import sys

    import lora_repro.tasks as pkg
    assert all(f"lora_repro.tasks.{m.name}" in sys.modules for m in pkgutil.iter_modules(pkg.__path__))


def test_every_task_has_a_yaml_a_fixture_and_planning_facts():
    """What adding a task needs, checked against the conf files and the class attributes (not against TASKS)."""
    from omegaconf import OmegaConf
    conf = ROOT / "conf" / "task"
    yamls = {str(p.relative_to(conf).with_suffix("")): OmegaConf.load(p)
             for p in conf.rglob("*.yaml") if not p.name.startswith("_")}
    assert set(yamls) == PACKAGE_TASKS == PAPER_TASKS | OUR_TASKS
    assert all(cfg.name == name for name, cfg in yamls.items())
    for name in PACKAGE_TASKS:
        cls = TASKS[name]
        assert cls.has_fixture(), name
        assert isinstance(cls.train_examples, int) and cls.train_examples > 0, name
        assert isinstance(cls.avg_tokens, int) and cls.avg_tokens > 0, name


def test_the_shared_task_block_is_not_a_task():
    from omegaconf import OmegaConf
    base = OmegaConf.load(ROOT / "conf" / "task" / "_base.yaml")
    assert OmegaConf.is_missing(base, "name")
