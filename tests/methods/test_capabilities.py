"""What methods declare: registration by walking the package, capability hooks, the paper's formulas."""
import subprocess
import sys
from pathlib import Path

import pytest

from lora_repro import methods
from lora_repro.methods import (
    METHODS,
    MethodConfigError,
    UnsupportedCapabilityError,
    apply_method,
    capabilities,
    get_method,
    layer_of,
    methods_with,
    paper_params,
)
from lora_repro.methods.base import CAPABILITIES, Method
from tests.helpers import ARCH_TYPES, BLOCKS, tiny_model

# options that fit the 3-block tiny models; every other method runs with its defaults
TINY_OPTIONS = {"adapter_d": [{"drop": 1}, {"drop": 2, "base": "pfeiffer", "r": 3}],
                "adapter_h": [{"r": 4}, {"r": 2, "train_layernorm": True}, {"r": 3, "layers": [0, 2]}],
                "adapter_l": [{"r": 5, "layers": [1]}],
                "lora": [{}, {"r": 2, "targets": ["q", "k", "v", "o"]}, {"r": {"q": 1, "v": 3}, "targets": ["v", "q"]},
                         {"r": 2, "targets": ["ffn_in", "ffn_out", "o"]}],
                "prefix_embed": [{"prefix_len": 3, "infix_len": 0}],
                "prefix_layer": [{"prefix_len": 2, "infix_len": 1}],
                "prefix_tuning": [{"prefix_len": 2, "mid_dim": 8}, {"prefix_len": 3, "mid_dim": 0}]}
DECODER_ONLY = {"prefix_tuning"}  # Li & Liang's key/value prefix: GPT-2 only


def _cases():
    return [(name, opts) for name in METHODS for opts in (TINY_OPTIONS.get(name) or [{}])]


def test_every_method_module_registers_without_an_import_line():
    """A new method is one module: the package imports all of its modules; no hand-kept list."""
    init = (Path(methods.__file__)).read_text()
    assert "from . import" not in init
    package = Path(methods.__file__).parent
    modules = sorted(p.stem for p in package.glob("*.py") if not p.stem.startswith("_"))
    assert sorted(methods.MODULES) == modules
    defined = {cls.name for cls in _subclasses(Method) if cls.__module__.startswith("lora_repro.methods.")
               and "name" in vars(cls)}
    assert defined == set(METHODS)


def test_a_fresh_interpreter_registers_every_method():
    code = "import lora_repro.methods as m; print(' '.join(m.METHODS))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert out == list(METHODS)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_capabilities_are_declared_by_the_methods():
    assert capabilities("lora") == set(CAPABILITIES)
    for name in ("adapter_h", "adapter_p", "adapter_l", "adapter_d", "prefix_embed", "prefix_layer", "prefix_tuning"):
        assert capabilities(name) == {"paper_param_formula"}, name
    for name in ("bitfit", "ft", "ft_top2"):
        assert capabilities(name) == set(), name
    # LoRA's successors: QLoRA cannot merge into 4-bit weights, DoRA has no plain low-rank ΔW, PEFT has no MoRA
    for name in ("rslora", "pissa", "loraplus"):
        assert capabilities(name) == set(CAPABILITIES), name
    assert capabilities("dora") == set(CAPABILITIES) - {"low_rank_factors"}
    assert capabilities("qlora") == set(CAPABILITIES) - {"merge"}
    assert capabilities("mora") == {"merge", "paper_param_formula"}
    assert set(methods_with("merge")) == {"lora", "dora", "rslora", "pissa", "loraplus", "mora"}
    assert "adapter_h" in methods_with("paper_param_formula")
    assert get_method("lora") is METHODS["lora"]
    with pytest.raises(MethodConfigError, match="unknown method 'lorax'; valid methods: .*lora"):
        get_method("lorax")
    with pytest.raises(ValueError, match="unknown capability"):
        methods_with("fly")


def test_unsupported_capabilities_name_the_method_and_those_that_have_it(tmp_path):
    model = tiny_model("roberta", layers=BLOCKS)
    apply_method(model, {"name": "adapter_h", "r": 2})
    cls = get_method("adapter_h")
    for call in (lambda: cls.merge(model), lambda: cls.unmerge(model),
                 lambda: cls.export_peft(model, tmp_path, "roberta-base"), lambda: cls.low_rank_factors({}, {})):
        with pytest.raises(UnsupportedCapabilityError, match=r"method 'adapter_h' does not support .*; "
                                                             r"methods that do: lora"):
            call()
    assert paper_params(model, "bitfit") is None and paper_params(model, "ft") is None


@pytest.mark.parametrize("arch", ARCH_TYPES)
@pytest.mark.parametrize("name,options", _cases(), ids=lambda v: v if isinstance(v, str) else None)
def test_paper_formula_equals_the_count_of_apply_method(arch, name, options):
    """Where a method states the paper's closed form, it is the real trainable count (head left out)."""
    cfg = {"name": name, **options}
    if arch == "gpt2" and name == "adapter_p":
        cfg["placement"] = "projection"  # the authors' Pfeiffer placement needs a post-LN block
    if name in DECODER_ONLY and arch != "gpt2":
        pytest.skip(f"{name} takes decoder-only models")
    model = tiny_model(arch, layers=BLOCKS)
    formula = paper_params(model, cfg)
    assert (formula is not None) == ("paper_param_formula" in capabilities(name))
    count = apply_method(model, cfg).params.trainable_paper
    if formula is not None:
        assert formula == count
        assert paper_params(model, cfg) == count  # also on the adapted model


def test_lora_formula_is_the_papers_2_L_d_r_on_square_q_v():
    model = tiny_model("roberta", layers=BLOCKS)                       # d = 32, L = 3
    assert paper_params(model, {"name": "lora", "r": 4}) == 2 * 3 * 2 * 32 * 4
    gpt2 = tiny_model("gpt2", layers=BLOCKS)
    assert paper_params(gpt2, {"name": "lora", "r": 4}) == 2 * 3 * 2 * 32 * 4   # c_attn slices


def test_layer_of_reads_the_architectures_layer_paths():
    assert layer_of("roberta.encoder.layer.11.attention.self.query") == 11
    assert layer_of("transformer.h.3.attn.c_attn.lora_A.q") == 3
    assert layer_of("transformer.h.3.attn.c_attn", "gpt2") == 3
    assert layer_of("transformer.h.3.attn.c_attn", "bert") is None
    assert layer_of("classifier.dense") is None and layer_of("h2.0.x") is None
