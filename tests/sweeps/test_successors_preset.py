"""The successors preset runs exactly the settings `lora_repro.paper.successors` states (what `lora-repro params
--successors` counts), and its LoRA cells are Table 2's / Table 3's runs (shared run ids), MRPC/RTE/STS-B aside."""
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from lora_repro.paper.successors import SETTINGS
from lora_repro.run import plain_config, run_id_of
from tests.helpers import REPO, compose_cfg


def sweep_list(preset: str, key: str) -> list[str]:
    preset_yaml = yaml.safe_load(Path(REPO / "conf" / "experiment" / f"{preset}.yaml").read_text())
    params = preset_yaml["hydra"]["sweeper"]["params"]
    return [c.strip() for c in params[key].split(",")]


def _cell(cell, seed=1):
    return compose_cfg([f"+experiment/successors={cell}", f"seed={seed}", "logger=none"])


def test_the_preset_lists_every_setting_on_every_task():
    cells = sweep_list("successors", "+experiment/successors")
    glue = {c for c in cells if c.startswith("roberta-base_")}
    assert glue == {f"roberta-base_{m}/{t}" for m in SETTINGS["roberta-base"]
                    for t in ("mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb")}
    assert set(cells) - glue == {f"gpt2-medium_{m}" for m in SETTINGS["gpt2-medium"]}


@pytest.mark.parametrize("model, task", [("roberta-base", "rte"), ("gpt2-medium", None)])
def test_each_cell_runs_the_stated_setting(model, task):
    for method, setting in SETTINGS[model].items():
        cfg = _cell(f"{model}_{method}" + (f"/{task}" if task else ""))
        composed = OmegaConf.to_container(cfg.method, resolve=True)
        assert composed["name"] == method and cfg.model.name == model
        assert {k: composed[k] for k in setting} == setting, method
        assert cfg.get("method_init_from") is None


@pytest.mark.parametrize("successor, table", [("roberta-base_lora/mnli", "+experiment/table2=roberta-base_lora/mnli"),
                                              ("roberta-base_lora/qqp", "+experiment/table2=roberta-base_lora/qqp"),
                                              ("gpt2-medium_lora", "+experiment/table3=gpt2-medium_lora")])
def test_lora_cells_are_the_paper_tables_runs(successor, table):
    ours = run_id_of(plain_config(_cell(successor, seed=2)))
    assert ours == run_id_of(plain_config(compose_cfg([table, "seed=2", "logger=none"])))
