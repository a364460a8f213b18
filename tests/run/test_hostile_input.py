"""Values that passed validation and then crashed after the model loaded (or trained something else) are
config errors now, before any compute: seeds outside NumPy's range, non-finite numbers, adam_eps,
log_every_steps=0, unknown generation keys, unknown top-level/task keys (`+sede=3` trained seed 0 under a new
id), and every LoRA problem at once. Bad data rows are config problems too (tests/tasks/test_data_errors.py)."""
import json

import pytest
from hydra import compose, initialize_config_dir

from lora_repro.app import CONF_DIR
from lora_repro.run import RunConfigError, validate
from lora_repro.tasks.fixtures import write_fixture


def compose_cfg(args):
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose("config", overrides=args)


def base(tmp_path, task="glue/sst2", model="tiny-roberta"):
    data = tmp_path / "data"
    if not data.exists():
        write_fixture(task, data, n_train=8, n_eval=4)
    return [f"model={model}", f"task={task}", "method=lora", "trainer=tiny", "logger=none", "progress_bar=false",
            "task.max_length=64", f"task.data_dir={data}", f"results_dir={tmp_path / 'results'}"]


@pytest.mark.parametrize("bad,message", [
    ("seed=-1", "seed=-1 is invalid; allowed: an integer in [0, 2**32)"),
    ("seed=99999999999999999999", "seed=99999999999999999999 is invalid"),
    ("seed=true", "seed=True is invalid"),
    ("trainer.lr=inf", "trainer.lr=inf is invalid; allowed: a finite number > 0"),
    ("trainer.weight_decay=inf", "trainer.weight_decay=inf is invalid"),
    ("trainer.adam_eps=-1", "trainer.adam_eps=-1 is invalid; allowed: a finite number > 0"),
    ("trainer.adam_eps=abc", "trainer.adam_eps='abc' is invalid"),
    ("trainer.adam_eps=nan", "trainer.adam_eps=nan is invalid"),
    ("trainer.max_grad_norm=inf", "trainer.max_grad_norm=inf is invalid"),
    ("trainer.log_every_steps=0", "trainer.log_every_steps=0 is invalid; allowed: an integer > 0"),
    ("trainer.save_every_steps=true", "trainer.save_every_steps=True is invalid"),
    ("+sede=3", "config=['sede'] is invalid; allowed: known top-level keys only"),
    ("+task.max_len=64", "task=['max_len'] is invalid; allowed: known task options only"),
])
def test_values_that_crashed_after_the_model_loaded_are_config_errors(tmp_path, bad, message):
    with pytest.raises(RunConfigError) as e:
        validate(compose_cfg(base(tmp_path) + [bad]))
    assert any(p.startswith(message) for p in e.value.problems), e.value.problems


def test_unknown_generation_key_is_a_config_error(tmp_path):
    with pytest.raises(RunConfigError, match=r"task.generation.foo=1 is invalid; allowed: a known generation "
                                             r"option: num_beams, length_penalty"):
        validate(compose_cfg(base(tmp_path, "e2e", "tiny-gpt2") + ["+task.generation.foo=1"]))


def test_every_lora_problem_is_reported_at_once(tmp_path):
    with pytest.raises(RunConfigError) as e:
        validate(compose_cfg(base(tmp_path) + ["method.r=0", "method.alpha=0", "method.targets=[q,z]",
                                               "method.dropout=1.5", "trainer.lr=0"]))
    text = "\n".join(e.value.problems)
    for part in ("trainer.lr=0", "target 'z'", "r=0 must", "alpha=0 must", "dropout=1.5 must"):
        assert part in text, text
    assert all(p.startswith(("trainer.", "method: lora: ")) for p in e.value.problems)


def test_bad_label_stops_the_run_in_validation_naming_file_line_value(tmp_path):
    args = base(tmp_path)
    val = tmp_path / "data" / "validation.jsonl"
    rows = [json.loads(line) for line in val.read_text().splitlines()]
    rows[1]["label"] = 7
    val.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RunConfigError, match=r"validation.jsonl: 'label' must be one of 0 \(negative\), "
                                             r"1 \(positive\); line 2: 7"):
        validate(compose_cfg(args))
