"""Model loading: tiny models built from the conf/model configs, the offline MiniLM as an ordinary
local checkpoint, and clear errors for configs that name no usable source."""
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lora_repro.app import CONF_DIR
from lora_repro.models import ModelConfigError, load_model, max_positions, model_config, resolve_source


class Cls:
    name, kind, num_labels = "cls", "classification", 3


class Reg:
    name, kind, num_labels = "reg", "regression", 1


def conf(name):
    return OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "model" / f"{name}.yaml"))


@pytest.mark.parametrize("name,cls_name", [("tiny-roberta", "RobertaForSequenceClassification"),
                                           ("tiny-deberta", "DebertaV2ForSequenceClassification"),
                                           ("tiny-gpt2", "GPT2LMHeadModel")])
def test_tiny_models_build_from_config_with_a_matching_tokenizer(name, cls_name):
    torch.manual_seed(0)
    model, tok = load_model(conf(name), Cls())
    assert type(model).__name__ == cls_name
    assert model.config.vocab_size == len(tok) and model.config.pad_token_id == tok.pad_token_id
    enc = tok("the meal was lovely", return_tensors="pt")
    enc.pop("token_type_ids", None)
    out = model(**enc).logits
    assert out.shape[-1] == (len(tok) if name == "tiny-gpt2" else 3)
    if name == "tiny-gpt2":
        assert tok.eos_token_id is not None and tok.pad_token_id is not None
    torch.manual_seed(0)
    again, _ = load_model(conf(name), Cls())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_minilm_loads_as_a_local_pretrained_checkpoint():
    from safetensors.torch import load_file
    mcfg = conf("minilm")
    path = Path(resolve_source(mcfg["pretrained"]))
    assert (path / "config.json").is_file()
    model, tok = load_model(mcfg, Reg())
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.problem_type == "regression"
    weights = load_file(str(path / "model.safetensors"))
    key = next(k for k in weights if k.endswith("embeddings.word_embeddings.weight"))
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, weights[key])  # pretrained, not random
    assert tok.vocab_size == 30522 and model.num_labels == 1


def test_model_config_is_cheap_and_capped_positions():
    config = model_config({"name": "x", "arch_config": "roberta-large"})
    assert config.hidden_size == 1024 and max_positions(config) == 512
    assert model_config(conf("tiny-gpt2")).n_embd == 32


def test_bad_model_configs_name_the_key():
    with pytest.raises(ModelConfigError, match="exactly one of model.pretrained"):
        model_config({"name": "x"})
    with pytest.raises(ModelConfigError, match="known names"):
        model_config({"name": "x", "arch_config": "roberta-huge"})
    with pytest.raises(ModelConfigError, match="not installed"):
        resolve_source("package:no_such_pkg_xyz/model")


def test_minilm_random_is_minilm_with_random_weights():
    """The demo's control (conf/model/minilm-random.yaml): the checkpoint's own architecture and tokenizer,
    none of its weights, the same draw for the same seed."""
    pretrained, tok = load_model(conf("minilm"), Cls())
    torch.manual_seed(0)
    random_body, tok_r = load_model(conf("minilm-random"), Cls())
    torch.manual_seed(0)
    again, _ = load_model(conf("minilm-random"), Cls())
    assert tok_r.get_vocab() == tok.get_vocab()
    a, b, c = pretrained.state_dict(), random_body.state_dict(), again.state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    emb = "bert.embeddings.word_embeddings.weight"
    assert not torch.allclose(a[emb], b[emb]) and torch.equal(b[emb], c[emb])
    assert sum(p.numel() for p in pretrained.parameters()) == sum(p.numel() for p in random_body.parameters())
