"""Each task's fixture round trip, prompt/target formats and compute_metrics."""
import pytest

from lora_repro.tasks import TASKS, Task, get_task
from lora_repro.tasks.fixtures import fixture_tasks, write_fixture
from lora_repro.tasks.glue import LABEL_WORDS, SCORE_WORDS

# the package's own tasks (tests may register toy tasks into TASKS; those are not the package's)
PACKAGE_TASKS = sorted(n for n, cls in TASKS.items() if cls.__module__.startswith("lora_repro.tasks."))
ENCODER_TASKS = [n for n in PACKAGE_TASKS if n.startswith("glue/")]


def test_every_package_task_has_a_fixture():
    """Each task module writes its own rows: every task of the package is a fixture task, and the list holds
    only tasks whose class overrides `Task.fixture_rows` (a registered task without one is left out)."""
    assert set(PACKAGE_TASKS) <= set(fixture_tasks())
    assert all(TASKS[n].fixture_rows is not Task.fixture_rows for n in fixture_tasks())


@pytest.mark.parametrize("name", PACKAGE_TASKS)
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_fixture_round_trip(tmp_path, name, fmt):
    task = get_task(name)
    paths = write_fixture(name, tmp_path, n_train=6, n_eval=5, fmt=fmt)
    assert sorted(paths) == sorted((task.train_split, *task.eval_splits))
    ds = task.load(tmp_path)
    assert ds[task.train_split].num_rows == 6
    for split in task.eval_splits:
        assert ds[split].num_rows == 5
    for col in task.columns:
        assert col in ds[task.train_split].column_names
    ex = ds[task.train_split][0]
    assert isinstance(task.prompt(ex), str) and task.prompt(ex)
    assert isinstance(task.target(ex), str) and task.target(ex).strip()
    items = task.eval_items(ds[task.main_split])
    assert items and all(it.references for it in items)
    # references fed back as predictions score perfectly on the main metric
    preds = [it.references[0] for it in items]
    metric = task.compute_metrics(preds, [it.references for it in items])
    assert metric[task.main_metric] == pytest.approx(100.0)


@pytest.mark.parametrize("name", ENCODER_TASKS)
def test_encoder_view_and_label_metrics(tmp_path, name):
    task = get_task(name)
    write_fixture(name, tmp_path, 6, 8)
    ds = task.load(tmp_path)[task.main_split]
    a, b = task.text_pair(ds[0])
    assert isinstance(a, str) and (b is None) == (len(task.text_columns) == 1)
    labels = [task.label(ex) for ex in ds]
    assert task.compute_metrics(labels, labels)[task.main_metric] == pytest.approx(100.0)
    wrong = [(x + 1) % max(task.num_labels, 2) for x in labels] if task.kind != "regression" else labels[::-1]
    assert task.compute_metrics(wrong, labels)[task.main_metric] < 100.0


@pytest.mark.parametrize("name", ENCODER_TASKS)
def test_fixture_labels_are_decided_by_a_keyword(tmp_path, name):
    task = get_task(name)
    write_fixture(name, tmp_path, 40, 4)
    words = SCORE_WORDS if task.kind == "regression" else LABEL_WORDS[:task.num_labels]
    for ex in task.load(tmp_path)["train"]:
        last = ex[task.text_columns[-1]].rstrip(".").split()
        present = [i for i, w in enumerate(words) if w in last]
        assert present == [int(task.label(ex))]
    assert len({task.label(ex) for ex in task.load(tmp_path)["train"]}) == len(words)   # every class appears


def test_fixtures_are_deterministic(tmp_path):
    for name in ("glue/mnli", "wikisql", "e2e"):
        a = write_fixture(name, tmp_path / "a", 5, 5, seed=3)
        b = write_fixture(name, tmp_path / "b", 5, 5, seed=3)
        c = write_fixture(name, tmp_path / "c", 5, 5, seed=4)
        assert all(a[s].read_bytes() == b[s].read_bytes() for s in a)
        assert any(a[s].read_bytes() != c[s].read_bytes() for s in a)


def test_fixture_bad_format(tmp_path):
    from lora_repro.tasks import TaskConfigError
    with pytest.raises(TaskConfigError, match="'xml'"):
        write_fixture("glue/rte", tmp_path, fmt="xml")
    with pytest.raises(TaskConfigError, match="csv"):
        write_fixture("wikisql", tmp_path, fmt="csv")
    write_fixture("glue/rte", tmp_path / "csv", 4, 4, fmt="csv")
    assert get_task("glue/rte").load(tmp_path / "csv")["train"].num_rows == 4


def test_glue_verbalizer_formats():
    mnli = get_task("glue/mnli")
    ex = {"premise": "A man sleeps.", "hypothesis": "Nobody sleeps.", "label": 2, "idx": 0}
    assert mnli.prompt(ex) == "premise: A man sleeps.\nhypothesis: Nobody sleeps.\nlabel:"
    assert mnli.target(ex) == " contradiction"
    assert mnli.text_pair(ex) == ("A man sleeps.", "Nobody sleeps.")
    stsb = get_task("glue/stsb")
    ex = {"sentence1": "a", "sentence2": "b", "label": 3.8, "idx": 0}
    assert stsb.prompt(ex) == "sentence1: a\nsentence2: b\nscore:" and stsb.target(ex) == " 3.8"
    assert get_task("glue/sst2").prompt({"sentence": "great", "label": 1, "idx": 0}) == "sentence: great\nlabel:"


def test_generated_labels_are_parsed():
    t = get_task("gpt2/mnli")
    assert t.kind == "generation" and t.eval_splits == ("validation_matched", "validation_mismatched")
    preds = [" entailment.", "Neutral\n", " maybe", ""]
    refs = [[" entailment"], [" neutral"], [" neutral"], [" contradiction"]]
    assert t.compute_metrics(preds, refs) == {"accuracy": 50.0}
    cola = get_task("glue/cola")
    assert cola.parse_generation(" unacceptable") == 0 and cola.parse_generation(" acceptable!") == 1
    stsb = get_task("glue/stsb")   # an unparseable generation ("?") scores as 0.0
    assert stsb.compute_metrics([" 1.0", "2.5 or so", "?"], [[" 1.0"], [" 2.5"], [" 4.0"]]) \
        == stsb.compute_metrics([1.0, 2.5, 0.0], [1.0, 2.5, 4.0])


def test_e2e_groups_references_by_mr():
    t = get_task("e2e")
    split = [{"meaning_representation": "name[A]", "human_reference": "A one."},
             {"meaning_representation": "name[B]", "human_reference": "B one."},
             {"meaning_representation": "name[A]", "human_reference": "A two."}]
    items = t.eval_items(split)
    assert [(i.prompt, i.references) for i in items] == [("name[A]", ["A one.", "A two."]), ("name[B]", ["B one."])]
    assert t.target(split[0]) == " A one."
    assert t.generation == {"num_beams": 10, "length_penalty": 0.9, "no_repeat_ngram_size": 4, "max_new_tokens": 64}


def test_samsum_prompt_per_appendix_c():
    t = get_task("samsum")
    ex = {"id": "1", "dialogue": "Anna: Hi!\r\nTom: Hello.\r\n", "summary": "They greet."}
    assert t.prompt(ex) == "Anna: Hi!\nTom: Hello.\n\n"
    assert t.target(ex) == "They greet."
    assert t.main_metric == "rouge1"


def test_wikisql_prompt_and_references_carry_the_table(tmp_path):
    t = get_task("wikisql")
    write_fixture("wikisql", tmp_path, 4, 6)
    ds = t.load(tmp_path)["validation"]
    ex = ds[0]
    assert t.prompt(ex) == f"table: Player | Team | Year | Points\nquestion: {ex['question']}\nSQL:"
    assert t.target(ex) == " " + ex["sql"]["human_readable"]
    items = t.eval_items(ds)
    wrong = ["SELECT Year FROM table"] * len(items)
    assert t.compute_metrics(wrong, [i.references for i in items])["lf_accuracy"] == 0.0
    from lora_repro.tasks import TaskConfigError
    with pytest.raises(TaskConfigError, match="WikiSQLReference"):
        t.compute_metrics(wrong, [[str(i.references[0])] for i in items])


def test_fixture_command(tmp_path, capsys):
    from lora_repro.tasks.fixtures import main
    assert main(["--list"]) == 0
    assert "glue/rte" in capsys.readouterr().out.split()
    assert main(["glue/rte", str(tmp_path), "--n-train", "3", "--n-eval", "2"]) == 0
    assert get_task("glue/rte").load(tmp_path)["validation"].num_rows == 2
    with pytest.raises(SystemExit):
        main(["glue/rte"])
