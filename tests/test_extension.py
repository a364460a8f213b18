"""Adding a method or a task is local: a toy method and a toy task defined HERE, outside the package, with their
configs in a config dir of their own (Hydra's searchpath), go through apply_method, the Hydra app, a record,
parameter counting on the meta device, the planner and the paper's tables, and no package or conf file names
them. Registration happens through fixtures, never at import time."""
import contextlib

import pytest
from torch import nn

from lora_repro import records
from lora_repro.methods import Method, apply_method, paper_params, register, unregister
from lora_repro.methods.arch import blocks
from lora_repro.tasks.fixtures import write_fixture
from tests.toy_tasks import ToyCount, registered


class LayerNormTune(Method):
    """Only the blocks' LayerNorms train (a known cheap baseline; not in the paper)."""
    name = "ln_tune"
    defaults = {"blocks": "all"}

    def validate(self, model, cfg):
        if cfg["blocks"] != "all":
            from lora_repro.methods import MethodConfigError
            raise MethodConfigError(f"ln_tune: blocks={cfg['blocks']!r}; valid: 'all'")

    def apply(self, model, cfg):
        for block in blocks(model):
            for module in block.modules():
                if isinstance(module, nn.LayerNorm):
                    module.requires_grad_(True)

    @classmethod
    def paper_param_formula(cls, model, cfg):
        return sum(2 * m.normalized_shape[0] for b in blocks(model) for m in b.modules() if isinstance(m, nn.LayerNorm))


@contextlib.contextmanager
def registered_method(cls):
    register(cls)
    try:
        yield
    finally:
        unregister(cls.name)


@pytest.fixture
def toys(tmp_path):
    """The toy method and task registered, their YAMLs in a config dir of their own, their data written."""
    conf = tmp_path / "conf"
    (conf / "method").mkdir(parents=True)
    (conf / "task" / "toy").mkdir(parents=True)
    (conf / "method" / "ln_tune.yaml").write_text("name: ln_tune\nblocks: all\n")
    (conf / "task" / "toy" / "count.yaml").write_text(
        "# @package task\ndefaults:\n  - /task/_base\n  - _self_\nname: toy/count\nmax_length: 32\n")
    with registered_method(LayerNormTune), registered(ToyCount):
        write_fixture("toy/count", tmp_path / "data" / "count", n_train=32, n_eval=16)
        write_fixture("glue/rte", tmp_path / "data" / "rte", n_train=32, n_eval=16)
        yield conf


def app(tmp_path, conf, *overrides):
    """The Hydra app in this process (the toys are registered here), on the toys' config dir."""
    from lora_repro.app import main
    main([f"hydra.searchpath=[file://{conf}]", "model=tiny-roberta", "trainer=tiny", "logger=none",
          "progress_bar=false", f"results_dir={tmp_path / 'results'}", *overrides])


def test_a_toy_method_and_task_from_outside_are_first_class(tmp_path, toys):
    from lora_repro.models import meta_model, model_config
    from lora_repro.report import write_tables
    from lora_repro.report.plots import write_figures
    from lora_repro.sweeps.plan import gpu_hours
    from lora_repro.tasks import get_task

    # apply_method and the paper-style count on the meta device (roberta-base: 12 blocks x 2 LayerNorms x 2 x 768)
    meta = meta_model(model_config({"name": "roberta-base", "arch_config": "roberta-base"}))
    report = apply_method(meta, {"name": "ln_tune"})
    assert report.params.trainable_paper == paper_params(meta, report.config) == 12 * 2 * 2 * 768

    # the Hydra app, twice: the toy method on the toy task, and on a paper task (so it lands in Table 2)
    app(tmp_path, toys, "method=ln_tune", "task=toy/count", f"task.data_dir={tmp_path / 'data' / 'count'}")
    app(tmp_path, toys, "method=ln_tune", "task=glue/rte", f"task.data_dir={tmp_path / 'data' / 'rte'}",
        "task.max_length=64")
    recs, bad = records.load_records(tmp_path / "results")
    assert not bad and {(r["method"], r["task"]) for r in recs} == {("ln_tune", "toy/count"), ("ln_tune", "glue/rte")}
    for rec in recs:
        assert records.is_finished(rec) and records.metric_value(rec) is not None
        assert rec["trainable_params"] == 2 * 2 * 2 * 32     # tiny-roberta: 2 blocks x 2 LayerNorms x 2 x 32

    # the planner prices the toy task from its own facts
    count = next(r for r in recs if r["task"] == "toy/count")["config"]
    assert gpu_hours({**count, "task": {**count["task"], "data_dir": None}}) > 0
    assert get_task("toy/count").train_examples == 1_000

    # the tables: the toy method is an extra row of Table 2 with its RTE cell; the toy task, in no paper table,
    # gets its parameter-budget figure
    table2 = write_tables(tmp_path / "results", numbers=[2])[2].read_text()
    row = next(line for line in table2.splitlines() if "ln_tune" in line)
    assert "tiny-roberta" in row and "(n=1)" in row
    figures = [p.name for p in write_figures(tmp_path / "results")]
    assert "budget_tiny-roberta_toy-count.png" in figures
