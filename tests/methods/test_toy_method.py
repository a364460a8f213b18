"""A method defined outside the package is first-class through its declarations alone.

`ToyLowRank` adds its own low-rank update on W_q (a small module run by a forward hook), and declares a
parameter formula, merge and low-rank factors. Registered by a fixture (never at import time), it goes
through apply_method, save_adapter / apply_adapter, merge, the formula check and the Sec 7 analyses'
factor loading, with no package file knowing its name.
"""
import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from lora_repro.analysis.adapters import load_adapter_dir
from lora_repro.analysis.rank import rank_table
from lora_repro.methods import (
    METHODS,
    LowRankFactor,
    Method,
    apply_adapter,
    apply_method,
    capabilities,
    get_method,
    layer_of,
    paper_params,
    register,
    save_adapter,
    unregister,
)
from lora_repro.methods.arch import blocks, get_arch
from tests.helpers import ARCH_TYPES, BLOCKS, tiny_batch, tiny_model

NAME = "toy_lowrank"


class ToyDelta(nn.Module):
    """scale · B A on the q output columns of its parent projection; B starts at zero."""

    def __init__(self, d_in: int, cols: slice, r: int, scale: float):
        super().__init__()
        self.cols, self.scale, self.merged = cols, scale, False
        self.A = nn.Parameter(torch.randn(r, d_in) * 0.1)
        self.B = nn.Parameter(torch.zeros(cols.stop - cols.start, r))

    def delta(self) -> torch.Tensor:
        return self.scale * self.B @ self.A


def _add_delta(module, args, out):
    toy = module.toy
    if toy.merged:
        return out
    out = out.clone()
    out[..., toy.cols] += toy.scale * (args[0] @ toy.A.T) @ toy.B.T
    return out


def _q_sites(model):
    """(projection, q columns, d_in) of every block."""
    site = get_arch(model).sites["q"]
    for block in blocks(model):
        m = block.get_submodule(site.path)
        d_in, d_out = m.weight.shape if isinstance(m, Conv1D) else m.weight.shape[::-1]
        i, n = site.chunk or (0, 1)
        yield m, slice(i * d_out // n, (i + 1) * d_out // n), d_in


class ToyLowRank(Method):
    name = NAME
    defaults = {"r": 2, "scale": 2.0}

    def apply(self, model, cfg):
        for m, cols, d_in in _q_sites(model):
            m.toy = ToyDelta(d_in, cols, cfg["r"], cfg["scale"])
            m.register_forward_hook(_add_delta)

    @classmethod
    def paper_param_formula(cls, model, cfg):
        return sum(cfg["r"] * (d_in + cols.stop - cols.start) for _, cols, d_in in _q_sites(model))

    @classmethod
    def merge(cls, model):
        with torch.no_grad():
            for m, _, _ in _q_sites(model):
                if not m.toy.merged:
                    d = m.toy.delta()
                    (m.weight[:, m.toy.cols].add_(d.T) if isinstance(m, Conv1D) else m.weight[m.toy.cols].add_(d))
                    m.toy.merged = True
        return model

    @classmethod
    def unmerge(cls, model):
        with torch.no_grad():
            for m, _, _ in _q_sites(model):
                if m.toy.merged:
                    d = m.toy.delta()
                    (m.weight[:, m.toy.cols].sub_(d.T) if isinstance(m, Conv1D) else m.weight[m.toy.cols].sub_(d))
                    m.toy.merged = False
        return model

    @classmethod
    def low_rank_factors(cls, state_dict, config):
        return {(layer_of(key), "q"): LowRankFactor(key[:-len(".toy.A")], a, state_dict[key[:-1] + "B"],
                                                      config["scale"])
                for key, a in state_dict.items() if key.endswith(".toy.A")}


@pytest.fixture
def toy():
    register(ToyLowRank)
    yield ToyLowRank
    unregister(NAME)


def _trained(arch, seed=0):
    model = tiny_model(arch, layers=BLOCKS)
    report = apply_method(model, {"name": NAME, "r": 3})
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, p in model.named_parameters():
            if key.endswith(".toy.B"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model, report


def _out(model, arch):
    """The last hidden states (the tiny heads' logits are too small to show a q update)."""
    with torch.no_grad():
        return model(**tiny_batch(arch), output_hidden_states=True).hidden_states[-1]


@pytest.mark.parametrize("arch", ARCH_TYPES)
def test_toy_method_trains_counts_saves_loads_and_merges(toy, arch, tmp_path):
    assert capabilities(NAME) == {"merge", "low_rank_factors", "paper_param_formula"}
    base = tiny_model(arch, layers=BLOCKS)
    fresh = tiny_model(arch, layers=BLOCKS)
    report = apply_method(fresh, {"name": NAME, "r": 3})
    assert torch.allclose(_out(fresh, arch), _out(base, arch), atol=1e-6)               # B = 0: the base model
    assert report.params.trainable_paper == paper_params(base, {"name": NAME, "r": 3}) > 0
    assert all((".toy." in k) for k, p in fresh.named_parameters()
               if p.requires_grad and k.startswith(fresh.base_model_prefix + "."))

    model, report = _trained(arch)
    want = _out(model, arch)
    assert not torch.allclose(want, _out(base, arch), atol=1e-4)
    save_adapter(model, tmp_path, report, base_model_name="tiny")
    loaded = tiny_model(arch, layers=BLOCKS)
    assert apply_adapter(loaded, tmp_path).config == report.config
    assert torch.equal(_out(loaded, arch), want)

    get_method(NAME).merge(loaded)
    assert torch.allclose(_out(loaded, arch), want, atol=1e-5)
    get_method(NAME).unmerge(loaded)
    assert torch.allclose(_out(loaded, arch), want, atol=1e-5)


@pytest.mark.parametrize("arch", ["roberta", "gpt2"])
def test_analysis_reads_the_toy_adapters_factors(toy, arch, tmp_path):
    model, report = _trained(arch)
    save_adapter(model, tmp_path / "adapter", report)
    run = load_adapter_dir(tmp_path / "adapter")
    assert sorted(run.factors) == [(0, "q"), (1, "q"), (2, "q")] and run.r == 3 and run.scale == 2.0
    m = blocks(model)[1].get_submodule(get_arch(model).sites["q"].path)
    assert torch.allclose(run.delta_w(1, "q").float(), m.toy.delta().detach(), atol=1e-6)
    rows, _ = rank_table([dict(run_id=f"t{r}", model="m", task="t", method=NAME, r=r, targets=["q"], seed=0,
                               metrics={"acc": v}, main_metric="acc", status="finished")
                          for r, v in [(1, .5), (2, .9)]])
    assert rows[0]["selected_r"] == 2


def test_the_toy_is_registered_only_inside_its_fixture():
    assert NAME not in METHODS
