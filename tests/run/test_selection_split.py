"""No model selection on a test split (fidelity review W3): a run that keeps its best epoch on a task whose
main eval split is `test` (E2E, SAMSum) is refused unless its config says why the paper did it; Table 3 decodes
the final checkpoint as the authors did; the SAMSum cells state the paper's reason."""
import pytest

from lora_repro import records
from lora_repro.checks import ConfigError, Problems
from lora_repro.run.validate import check_selection_split, validate
from lora_repro.sweeps import compose as sweep
from lora_repro.tasks import get_task
from tests.helpers import compose_cfg, overrides


def _problems(config, task):
    p = Problems()
    check_selection_split(config, get_task(task), p)
    return list(p)


def test_best_epoch_on_a_test_split_is_refused_with_the_fix():
    config = {"trainer": {"epochs": 5, "eval_epochs": "all"}}
    [problem] = _problems(config, "e2e")
    assert "'test' split" in problem and "eval_epochs" in problem and records.SELECT_ON_TEST_KEY in problem
    assert _problems({"trainer": {"epochs": 5, "eval_epochs": "last"}}, "e2e") == []
    assert _problems({"trainer": {"epochs": 1, "eval_epochs": "all"}}, "e2e") == []     # one epoch: nothing picked
    assert _problems(config, "glue/rte") == []                                           # a dev split
    assert _problems({**config, records.SELECT_ON_TEST_KEY: "the paper did (App. C)"}, "samsum") == []
    assert len(_problems({**config, records.SELECT_ON_TEST_KEY: " "}, "samsum")) == 1


def test_a_tiny_e2e_run_with_best_epoch_selection_fails_validation(tmp_path):
    args = [*overrides(tmp_path, "e2e", "lora"), "trainer.epochs=2", "logger=none"]
    with pytest.raises(ConfigError, match="selects the model on a test split"):
        validate(compose_cfg(args))
    last = validate(compose_cfg([*args, "trainer.eval_epochs=last"]))
    stated = validate(compose_cfg([*args, f"+{records.SELECT_ON_TEST_KEY}='our reason'"]))
    assert stated.run_id != last.run_id   # eval_epochs differs; the reason itself is not part of the identity
    assert records.run_identity({**stated.config, records.SELECT_ON_TEST_KEY: "other"}) == stated.run_id


def test_table3_decodes_the_final_checkpoint_and_samsum_states_the_papers_reason():
    with sweep.hydra_context():
        table3 = sweep.preset_jobs("table3", ["seed=1"])
        samsum = [j for j in sweep.preset_jobs("table4", ["seed=1", "+experiment/table4=lora_r8"])
                  if j.config["task"]["name"] == "samsum"]
    assert len(table3) == 12 and len(samsum) == 1
    for job in table3:
        assert job.config["trainer"]["eval_epochs"] == "last", job.overrides
        assert _problems(job.config, "e2e") == []
        assert _problems({**job.config, "trainer": {**job.config["trainer"], "eval_epochs": "all"}}, "e2e")
    assert _problems(samsum[0].config, "samsum") == [] and samsum[0].config["trainer"]["eval_epochs"] == "all"
    assert "819" in samsum[0].config[records.SELECT_ON_TEST_KEY]
