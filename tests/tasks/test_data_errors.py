"""Bad local data is named before anything trains or scores: the file, the line (JSON lines) or row, and the
value. Wrong labels used to score silently (label 7 counted as wrong, -1 everywhere gave accuracy 0.0, 0.7
became 0), NaN scores gave pearson 0.0, and `task.data_dir=sst2[12]` read the sibling folder `sst21`."""
import json

import pytest

from lora_repro.checks import Problems
from lora_repro.tasks import TaskConfigError, get_task
from lora_repro.tasks.fixtures import write_fixture


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_rows(path, rs):
    path.write_text("".join(json.dumps(r) + "\n" for r in rs))


def edit(path, row, **values):
    rs = rows(path)
    rs[row].update(values)
    write_rows(path, rs)


@pytest.fixture
def sst2(tmp_path):
    write_fixture("glue/sst2", tmp_path / "sst2", n_train=16, n_eval=8)
    return tmp_path / "sst2"


@pytest.fixture
def stsb(tmp_path):
    write_fixture("glue/stsb", tmp_path / "stsb", n_train=16, n_eval=8)
    return tmp_path / "stsb"


@pytest.mark.parametrize("split,value,shown", [
    ("validation", 7, "line 3: 7"), ("validation", -1, "line 3: -1"), ("train", 0.7, "line 3: 0.7"),
    ("train", "positive", "line 3: 'positive'"), ("train", None, "line 3: None"), ("train", True, "line 3: True"),
])
def test_a_label_outside_the_classes_is_named_with_file_line_and_value(sst2, split, value, shown):
    edit(sst2 / f"{split}.jsonl", 2, label=value)
    with pytest.raises(TaskConfigError, match=r"validation|train") as e:
        get_task("glue/sst2").load(sst2)
    assert f"{sst2 / split}.jsonl: 'label' must be one of 0 (negative), 1 (positive); {shown}" in str(e.value)


@pytest.mark.parametrize("value", [float("nan"), 99.0, -0.5, "high", None])
def test_an_stsb_score_outside_0_to_5_or_nan_is_named(stsb, value):
    edit(stsb / "validation.jsonl", 4, label=value)
    with pytest.raises(TaskConfigError, match=r"validation.jsonl: 'label' must be a finite score in \[0, 5\]; "
                                              r"line 5: "):
        get_task("glue/stsb").load(stsb)


def test_a_text_that_is_not_a_string_is_named(sst2):
    edit(sst2 / "train.jsonl", 0, sentence=None)
    with pytest.raises(TaskConfigError, match=r"train.jsonl: 'sentence' is not text; line 1: None"):
        get_task("glue/sst2").load(sst2)


def test_unreadable_files_name_the_line_or_the_reason(sst2):
    (sst2 / "train.jsonl").write_text("")
    with pytest.raises(TaskConfigError, match=r"train.jsonl is empty"):
        get_task("glue/sst2").load(sst2)
    write_fixture("glue/sst2", sst2, n_train=16, n_eval=8)
    lines = (sst2 / "train.jsonl").read_text().splitlines()
    lines[10] = lines[10][:-3]
    (sst2 / "train.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(TaskConfigError, match=r"train.jsonl as json: line 11 is not a JSON object"):
        get_task("glue/sst2").load(sst2)
    (sst2 / "train.jsonl").write_bytes(b'{"sentence": "ok \xff\xfe", "label": 1, "idx": 0}\n')
    with pytest.raises(TaskConfigError, match=r"train.jsonl.*(line 1 is not UTF-8|not UTF-8)"):
        get_task("glue/sst2").load(sst2)


def test_two_files_for_one_split_are_refused(sst2):
    (sst2 / "train.csv").write_text("sentence,label,idx\nx,1,0\n")
    with pytest.raises(TaskConfigError, match=r"more than one file for a split.*train.csv and train.jsonl"):
        get_task("glue/sst2").load(sst2)


def test_glob_characters_in_data_dir_read_exactly_that_folder(tmp_path):
    named, sibling = tmp_path / "sst2[12]", tmp_path / "sst21"
    write_fixture("glue/sst2", named, n_train=16, n_eval=8)
    write_fixture("glue/sst2", sibling, n_train=16, n_eval=8)
    for split in ("train", "validation"):
        write_rows(sibling / f"{split}.jsonl", [{**r, "sentence": "DECOY " + r["sentence"]}
                                                for r in rows(sibling / f"{split}.jsonl")])
    ds = get_task("glue/sst2").load(named)
    assert ds["train"][0] == rows(named / "train.jsonl")[0]
    assert not any(s.startswith("DECOY") for s in [*ds["train"]["sentence"], *ds["validation"]["sentence"]])


def test_check_data_dir_reports_bad_rows_as_config_problems(sst2):
    edit(sst2 / "validation.jsonl", 0, label=7)
    p = Problems()
    get_task("glue/sst2").check_data_dir(sst2, p)
    assert len(p) == 1 and p[0].startswith(f"task.data_dir={str(sst2)!r}: glue/sst2: ") and "line 1: 7" in p[0]


@pytest.mark.parametrize("task,column", [("e2e", "human_reference"), ("samsum", "dialogue"),
                                         ("wikisql", "question")])
def test_a_generation_task_text_that_is_not_a_string_is_named(tmp_path, task, column):
    write_fixture(task, tmp_path, n_train=8, n_eval=4)
    edit(tmp_path / "train.jsonl", 1, **{column: None})
    with pytest.raises(TaskConfigError, match=rf"train.jsonl: '{column}' is not text; line 2: None"):
        get_task(task).load(tmp_path)
