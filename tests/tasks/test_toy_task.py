"""Adding a task is local: a task class defined outside the package (tests/toy_tasks.py), with its own fixture rows and
planning facts, takes part in write_fixture, Task.load, check_data_dir and the planner once registered
(by a fixture, never at import time), without any other file knowing its name."""
import math

import pytest

from lora_repro.checks import Problems
from lora_repro.sweeps import plan as planner
from lora_repro.tasks import TASKS, Task, TaskConfigError, get_task
from lora_repro.tasks.fixtures import fixture_tasks, main, write_fixture
from tests.toy_tasks import ToyCount, registered


class ToyNoFixture(ToyCount):
    name = "toy/no_fixture"
    fixture_rows = Task.fixture_rows


@pytest.fixture
def toy_count():
    with registered(ToyCount):
        yield get_task("toy/count")


def test_defined_here_is_not_registered_until_the_fixture_does():
    assert "toy/count" not in TASKS
    with pytest.raises(TaskConfigError, match="valid tasks: .*glue/rte"):
        get_task("toy/count")


def test_registration_is_undone(toy_count):
    assert TASKS["toy/count"] is ToyCount
    with registered(ToyNoFixture):
        assert "toy/no_fixture" in TASKS
    assert "toy/no_fixture" not in TASKS and "toy/count" in TASKS


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_fixture_load_and_check_data_dir(tmp_path, toy_count, fmt):
    assert "toy/count" in fixture_tasks()
    paths = write_fixture("toy/count", tmp_path, n_train=10, n_eval=4, fmt=fmt)
    assert sorted(paths) == ["test", "train", "validation"]
    ds = toy_count.load(tmp_path)
    assert (ds["train"].num_rows, ds["validation"].num_rows, ds["test"].num_rows) == (10, 4, 4)
    ex = ds["train"][0]
    assert len(ex["text"].split()) == toy_count.label(ex) + 1
    problems = Problems()
    toy_count.check_data_dir(tmp_path, problems)
    assert problems == []
    paths["test"].unlink()
    toy_count.check_data_dir(tmp_path, problems)
    assert len(problems) == 1 and "test{" in problems[0]


def test_fixture_is_deterministic_per_task_and_split(tmp_path, toy_count):
    a = write_fixture("toy/count", tmp_path / "a", 6, 6, seed=2)
    b = write_fixture("toy/count", tmp_path / "b", 6, 6, seed=2)
    assert all(a[s].read_bytes() == b[s].read_bytes() for s in a)
    assert a["validation"].read_bytes() != a["test"].read_bytes()


def test_fixture_command_lists_it(toy_count, capsys):
    assert main(["--list"]) == 0
    assert "toy/count" in capsys.readouterr().out.split()


def test_a_task_without_fixture_rows_is_named_with_the_ones_that_have_them(tmp_path):
    with registered(ToyCount, ToyNoFixture):
        assert "toy/no_fixture" not in fixture_tasks() and "toy/count" in fixture_tasks()
        with pytest.raises(TaskConfigError, match=r"no fixture for task 'toy/no_fixture'.*toy/count"):
            write_fixture("toy/no_fixture", tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_nested_columns_refuse_csv(tmp_path):
    class Nested(ToyCount):
        name = "toy/nested"
        nested_columns = ("text",)
    with registered(Nested), pytest.raises(TaskConfigError, match="toy/nested has nested columns"):
        write_fixture("toy/nested", tmp_path, fmt="csv")


def test_planner_prices_it_from_its_own_facts(tmp_path, toy_count):
    cfg = {"model": {"name": "roberta-base"}, "method": {"name": "lora"},
           "task": {"name": "toy/count", "max_length": 512},
           "trainer": {"epochs": 2, "batch_size": 16, "grad_accum": 1, "precision": "bf16"}}
    params, layers = planner.model_size("roberta-base")
    step_s = max(16 * 12 * planner.PADDING * 4 * params / planner.EFFECTIVE_FLOPS["bf16"],
                 planner.MIN_STEP_S_PER_LAYER * layers)
    assert planner.gpu_hours(cfg) == pytest.approx(math.ceil(1_000 / 16) * 2 * step_s / 3600 * 1.1)
    write_fixture("toy/count", tmp_path, n_train=40, n_eval=4, fmt="parquet")
    assert planner.train_examples({"name": "toy/count", "data_dir": str(tmp_path)}) == 40
    assert planner.gpu_hours({**cfg, "task": {**cfg["task"], "data_dir": str(tmp_path)}}) < planner.gpu_hours(cfg)
    with registered(type("ToyUnplanned", (ToyCount,), {"name": "toy/unplanned", "avg_tokens": None})):
        assert planner.gpu_hours({**cfg, "task": {**cfg["task"], "name": "toy/unplanned"}}) is None
