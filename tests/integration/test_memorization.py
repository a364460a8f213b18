"""MoRA's memorization task (experiments/memorization.py): the fixture is deterministic, the loss mask covers
exactly the value's characters, the budgets of LoRA and MoRA match, and a few steps already learn something."""
import importlib.util

import pytest
import torch

from tests.helpers import REPO


def _memo():
    spec = importlib.util.spec_from_file_location("memorization", REPO / "experiments" / "memorization.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fixture_and_mask():
    memo = _memo()
    pairs = memo.uuid_pairs(8, seed=3)
    assert pairs == memo.uuid_pairs(8, seed=3) and pairs != memo.uuid_pairs(8, seed=4)
    assert all(len(k) == len(v) == 36 and k.count("-") == 4 for k, v in pairs)
    ids, mask = memo.encode(pairs)
    text = "".join(memo.CHARS[i] for i in ids[0])
    assert text == f"{pairs[0][0]}:{pairs[0][1]}."
    # the positions whose NEXT token is a value character: from the ':' to the value's second-to-last character
    predicted = "".join(memo.CHARS[i] for i in ids[0, 1:][mask[0, :-1]])
    assert predicted == pairs[0][1]


@pytest.mark.slow
def test_equal_budgets_and_learning():
    memo = _memo()
    pairs = memo.uuid_pairs(16, seed=0)
    kw = dict(d=32, layers=1, heads=2, steps=30, batch=16, lr=1e-2, eval_every=30, seed=0)
    torch.manual_seed(0)
    lora = memo.train({"name": "lora", "r": 2, "alpha": 4, "targets": memo.TARGETS}, pairs, **kw)
    mora = memo.train({"name": "mora", "r": 2, "kind": "sharing", "targets": memo.TARGETS}, pairs, **kw)
    assert abs(lora["trainable_params"] - mora["trainable_params"]) <= 0.05 * lora["trainable_params"]
    for res in (lora, mora):
        (_, before), (_, after) = res["curve"][0], res["curve"][-1]
        assert after > before + 0.05      # 16 hex characters: chance is 1/16; 30 steps already memorize some
