"""LoRA (Hu et al., 2021): a frozen weight W plus a trainable low-rank update, h = W x + (alpha/r) B A x.

`LoRALayer` wraps the original module (it never copies it) and adds one (A, B) pair per canonical target,
kept in `lora_A` / `lora_B` ParameterDicts keyed by the target name (the naming contract of the project):
`...attention.self.query.lora_A.q` is [r, d_in], `...lora_B.q` is [d_out, r].

GPT-2 fuses q, k, v into one Conv1D (`attn.c_attn`, weight [d, 3d]). As loralib's MergedLinear with
enable_lora=[True, False, True] (the paper's own code), each chosen slice gets its own factors and its own
update; the base stays one fused matmul and the LoRA path costs one x @ [A_q; A_v]^T plus one small matmul per
slice. (PEFT's target_modules=["c_attn"] instead learns one A shared by the whole fused matrix.)

A starts Kaiming-uniform (a=sqrt(5), as loralib) and B at zero, so the adapted model equals the base at init;
`init_a: normal` draws A from N(0, initializer_range) instead, as the authors' DeBERTa code does.
`merge_lora` folds B A into W for inference without extra latency; `lora_to_plain` then hands back a plain
transformers model (the original nn.Linear / Conv1D modules with merged weights).
"""
from __future__ import annotations

import copy
import math
import numbers
import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from .arch import available_sites, blocks, get_arch, layer_of
from .base import AdapterLoadError, LowRankFactor, Method, MethodConfigError, register

WRAPPABLE = (nn.Linear, Conv1D)
_FACTOR_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])\.(?P<target>[^.]+)$")  # the naming contract


def lora_scale(alpha: float, r: int, rank_stabilized: bool = False) -> float:
    """loralib's scale of the update: h = W x + (alpha / r) B A x. The one place that says so.

    rsLoRA (Kalajdzievski 2023) scales by alpha / sqrt(r) instead, so that the update's size does not shrink
    as the rank grows."""
    return alpha / math.sqrt(r) if rank_stabilized else alpha / r


class SliceDeltaLayer(nn.Module):
    """A frozen base layer plus a ΔW per adapted output slice, which merges into the base and back out.

    Subclasses (LoRA's B A, MoRA's square operator) set `base_layer`, `slices` (target -> output columns),
    `fan_in_fan_out` (Conv1D stores [in, out]) and `merged`, and give `delta_weight(target)`; `label` and
    `unmerge_call` name the method and what undoes its merge, for the error a merged layer gives when trained.
    """

    def _is_merged(self) -> bool:
        """True when the update already sits in the base weights (forward is then the base's alone); training a
        merged layer would train the update twice over, so it is refused."""
        if self.merged and self.training and torch.is_grad_enabled():
            raise RuntimeError(f"{self.label} weights are merged into the base weights; call {self.unmerge_call} "
                               "before training")
        return self.merged

    @property
    def weight(self) -> torch.Tensor:  # code that reads `.weight` of the wrapped projection keeps working
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    @torch.no_grad()
    def _add_to_base(self, sign: float) -> None:
        if not isinstance(self.base_layer, WRAPPABLE):
            raise RuntimeError(f"cannot merge into a {type(self.base_layer).__name__}: its weights are quantized")
        w = self.base_layer.weight
        for t, sl in self.slices.items():
            delta = self.delta_weight(t).to(w.dtype) * sign
            (w[:, sl] if self.fan_in_fan_out else w[sl]).add_(delta.T if self.fan_in_fan_out else delta)

    def merge(self) -> None:
        if not self.merged:
            self._add_to_base(+1.0)
            self.merged = True

    def unmerge(self) -> None:
        if self.merged:
            self._add_to_base(-1.0)
            self.merged = False


class LoRALayer(SliceDeltaLayer):
    """A frozen nn.Linear or GPT-2 Conv1D plus a low-rank update on some of its output slices.

    `slices` maps each target name to the output columns it adapts (the whole output for an unfused
    projection, one third of it for a q/k/v slice of GPT-2's c_attn).
    """

    label = "LoRA"
    unmerge_call = "unmerge_lora(model)"

    def __init__(self, base_layer: nn.Module, slices: dict[str, slice], r: dict[str, int], alpha: float,
                 dropout: float = 0.0, rank_stabilized: bool = False):
        super().__init__()
        if not (isinstance(base_layer, WRAPPABLE) or getattr(base_layer, "frozen_quantized", False)):
            raise TypeError(f"LoRALayer wraps nn.Linear, Conv1D or a frozen quantized linear, "
                            f"got {type(base_layer).__name__}")
        self.base_layer = base_layer
        self.fan_in_fan_out = isinstance(base_layer, Conv1D)  # Conv1D stores its weight as [in, out]
        w = base_layer.weight
        d_in = w.shape[0] if self.fan_in_fan_out else w.shape[1]
        self.slices = dict(slices)
        self.r = {t: int(r[t]) for t in self.slices}
        self.alpha = alpha
        self.rank_stabilized = rank_stabilized
        self.scaling = {t: lora_scale(alpha, self.r[t], rank_stabilized) for t in self.slices}
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = nn.ParameterDict({t: nn.Parameter(w.new_empty(self.r[t], d_in)) for t in self.slices})
        self.lora_B = nn.ParameterDict(
            {t: nn.Parameter(w.new_zeros(sl.stop - sl.start, self.r[t])) for t, sl in self.slices.items()})
        for a in self.lora_A.values():
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        self.merged = False
        d_out = w.shape[1] if self.fan_in_fan_out else w.shape[0]
        # what forward loops over, fixed with the slices: (name, rank, output slice or None for the whole output)
        self._plan = [(t, self.r[t], None if (sl.start, sl.stop) == (0, d_out) else sl)
                      for t, sl in self.slices.items()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        if self._is_merged():
            return out
        plan, factors_a, factors_b = self._plan, self.lora_A, self.lora_B
        a = factors_a[plan[0][0]] if len(plan) == 1 else torch.cat([factors_a[t] for t, *_ in plan])
        # fp32 factors on a bf16 base (lora_repro.train.precision) compute in the input's dtype; a no-op in fp32
        h = self.dropout(x) @ a.to(x.dtype).T                       # one matmul for every target's A
        hs = (h,) if len(plan) == 1 else h.split([r for _, r, _ in plan], dim=-1)
        for (t, _, sl), h_t in zip(plan, hs):
            delta = h_t @ factors_b[t].to(h_t.dtype).T
            # the scale rides on the add (no extra kernel); a whole-output add needs no strided view
            (out if sl is None else out[..., sl]).add_(delta, alpha=self.scaling[t])
        return out

    def delta_weight(self, target: str) -> torch.Tensor:
        """(alpha/r) B A for one target, in nn.Linear orientation [d_slice, d_in]."""
        return (self.lora_B[target] @ self.lora_A[target]) * self.scaling[target]

    def extra_repr(self) -> str:
        parts = [f"{t}: r={self.r[t]} cols={sl.start}:{sl.stop}" for t, sl in self.slices.items()]
        return f"alpha={self.alpha}, {', '.join(parts)}, merged={self.merged}"


def lora_layers(model: nn.Module) -> list[tuple[str, LoRALayer]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALayer)]


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every B A into its base weight (idempotent); the forward then is the base layer's alone."""
    for _, layer in lora_layers(model):
        layer.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo `merge_lora` (idempotent): subtract B A again so that training can go on."""
    for _, layer in lora_layers(model):
        layer.unmerge()
    return model


def lora_to_plain(model: nn.Module) -> nn.Module:
    """Merge, then put the original base modules back in place of the wrappers (in place).

    The result is a plain transformers model (`save_pretrained` / `from_pretrained` as usual) whose outputs
    equal the LoRA model's up to float rounding of the merge (tested: max |diff| <= 1e-5 * max |output| in fp32).
    """
    for name, layer in lora_layers(model):
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, layer.base_layer)
    return model


def merged_copy(model: nn.Module) -> nn.Module:
    """A plain transformers model with the LoRA updates merged in; `model` itself is left as it is."""
    return lora_to_plain(copy.deepcopy(model))


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def ranks(cfg: dict) -> dict[str, int]:
    """The rank of each target: `r` is one int for all, or a mapping target -> int."""
    r = cfg["r"]
    return {t: int(r[t]) for t in cfg["targets"]} if isinstance(r, Mapping) else {t: int(r) for t in cfg["targets"]}


def _d_in_out(module: nn.Module) -> tuple[int, int]:
    """Input and output width of a projection (wrapped or not): Conv1D stores its weight as [in, out]."""
    base = module.base_layer if isinstance(module, LoRALayer) else module
    d0, d1 = base.weight.shape
    return (d0, d1) if isinstance(base, Conv1D) else (d1, d0)


@register
class LoRA(Method):
    name = "lora"
    # init_a: "kaiming" (loralib's Kaiming-uniform) | "normal": N(0, the model's initializer_range), what the
    # authors' DeBERTa code does (its _init_weights re-draws lora_A of query_proj/value_proj; review D12)
    defaults = {"r": 8, "alpha": 8, "dropout": 0.0, "targets": ["q", "v"], "init_a": "kaiming"}

    @classmethod
    def merge(cls, model: nn.Module) -> nn.Module:
        return merge_lora(model)

    @classmethod
    def unmerge(cls, model: nn.Module) -> nn.Module:
        return unmerge_lora(model)

    @classmethod
    def export_peft(cls, model: nn.Module, directory, base_model_name_or_path: str):
        from .peft_export import export_to_peft  # peft_export builds on this module
        return export_to_peft(model, directory, base_model_name_or_path)

    @classmethod
    def paper_param_formula(cls, model: nn.Module, cfg: dict) -> int:
        """Sum over adapted matrices of r·(d_in + d_out), d_out of the slice for GPT-2's fused q/k/v: the
        paper's |Θ| = 2·L̂·d·r for square W_q and W_v."""
        sites, total = get_arch(model).sites, 0
        for block in blocks(model):
            for t, r in ranks(cfg).items():
                d_in, d_out = _d_in_out(block.get_submodule(sites[t].path))
                total += r * (d_in + d_out // (sites[t].chunk or (0, 1))[1])
        return total

    @classmethod
    def low_rank_factors(cls, state_dict: dict, config: dict) -> dict[tuple[int, str], LowRankFactor]:
        """Pair `<module>.lora_A.<target>` with `<module>.lora_B.<target>`; the scale is the layer's, alpha/r."""
        parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
        for key, tensor in state_dict.items():
            m = _FACTOR_KEY.match(key)
            if m:
                parts.setdefault((m["module"], m["target"]), {})[m["which"]] = tensor
        if not any("A" in p for p in parts.values()):
            raise AdapterLoadError(f"no LoRA tensors ('<module>.lora_A.<target>'); it is not a LoRA run. Its tensors: "
                                   f"{sorted(state_dict)[:6]}{' ...' if len(state_dict) > 6 else ''}")
        alpha, r_cfg = config.get("alpha", cls.defaults["alpha"]), config.get("r")
        factors: dict[tuple[int, str], LowRankFactor] = {}
        for (module, target), ab in sorted(parts.items()):
            missing = [f"{module}.lora_{w}.{target}" for w in "AB" if w not in ab]
            if missing:
                raise AdapterLoadError(f"missing tensor(s) {missing}")
            A, B = ab["A"].detach().float(), ab["B"].detach().float()
            if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[1]:
                raise AdapterLoadError(f"{module} target {target!r} has lora_A {tuple(A.shape)} and lora_B "
                                       f"{tuple(B.shape)}; expected [r, d_in] and [d_out, r]")
            r = r_cfg.get(target) if isinstance(r_cfg, Mapping) else r_cfg
            if r is not None and int(r) != A.shape[0]:
                raise AdapterLoadError(f"the config says r={r_cfg} but {module} target {target!r} has rank "
                                       f"{A.shape[0]}")
            layer = layer_of(module)
            if layer is None:
                raise AdapterLoadError(f"cannot find a layer index ('.layer.N.' or '.h.N.') in module path "
                                       f"{module!r}")
            if (layer, target) in factors:
                raise AdapterLoadError(f"two modules adapt layer {layer} target {target!r}: "
                                       f"{factors[layer, target].module} and {module}")
            factors[layer, target] = LowRankFactor(module, A, B, cls.factor_scale(alpha, A.shape[0]))
        return factors

    @classmethod
    def factor_scale(cls, alpha: float, r: int) -> float:
        """The scale of B A in this method's layers (rsLoRA overrides it)."""
        return lora_scale(alpha, r)

    def make_layer(self, base: nn.Module, slices: dict[str, slice], r: dict[str, int], cfg: dict) -> LoRALayer:
        """The wrapper of one projection; LoRA's successors (rsLoRA, PiSSA, DoRA, QLoRA) override this one hook."""
        return LoRALayer(base, slices, r, cfg["alpha"], cfg["dropout"])

    @classmethod
    def check_adapter_config(cls, model: nn.Module, config: dict, source: str = "adapter") -> None:
        layers = [layer for _, layer in lora_layers(model)]
        if any(layer.merged for layer in layers):
            raise AdapterLoadError("the model's LoRA weights are merged; call unmerge_lora(model) before loading")
        if any(layer.alpha != config["alpha"] for layer in layers):
            # a different alpha changes the scale alpha/r silently: the shapes would still fit
            raise AdapterLoadError(f"{source} has alpha={config['alpha']!r}; the model's LoRA layers "
                                   f"have alpha={sorted({layer.alpha for layer in layers})}")

    def validate(self, model: nn.Module, cfg: dict) -> None:
        """Every problem of the options at once (one MethodConfigError, one line each)."""
        model_type = model.config.model_type
        valid = available_sites(model)
        targets = cfg["targets"]
        problems = []
        if isinstance(targets, str) or not isinstance(targets, Sequence) or not targets:
            problems.append(f"{self.name}: targets={targets!r} must be a non-empty list; valid targets: "
                            f"{', '.join(valid)}")
            targets = []
        for t in targets:
            if t not in valid:
                problems.append(f"{self.name}: target {t!r} is not in model_type {model_type!r}; "
                                f"valid targets: {', '.join(valid)}")
        if len(set(targets)) != len(targets):
            problems.append(f"{self.name}: targets={list(targets)!r} lists a target twice")
        r = cfg["r"]
        if isinstance(r, Mapping):
            if set(r) != set(targets):
                problems.append(f"{self.name}: r={dict(r)!r} must give a rank for exactly the targets "
                                f"{list(targets)!r}")
            bad = {t: v for t, v in r.items() if not (_is_int(v) and v > 0)}
            if bad:
                problems.append(f"{self.name}: r={bad!r} must be integers > 0")
        elif not (_is_int(r) and r > 0):
            problems.append(f"{self.name}: r={r!r} must be an integer > 0 (or a mapping target -> integer)")
        if not (_is_real(cfg["alpha"]) and cfg["alpha"] > 0):
            problems.append(f"{self.name}: alpha={cfg['alpha']!r} must be a number > 0 (the scale is alpha/r)")
        if not (_is_real(cfg["dropout"]) and 0 <= cfg["dropout"] < 1):
            problems.append(f"{self.name}: dropout={cfg['dropout']!r} must be a number in [0, 1)")
        if cfg.get("init_a", "kaiming") not in ("kaiming", "normal"):
            problems.append(f"{self.name}: init_a={cfg['init_a']!r} is not supported; valid: ['kaiming', 'normal']")
        if lora_layers(model):
            problems.append(f"{self.name}: the model already has LoRA layers; start from a fresh model")
        sites = get_arch(model).sites
        for t in (t for t in dict.fromkeys(targets) if t in valid):
            for block in blocks(model):
                module = block.get_submodule(sites[t].path)
                if not isinstance(module, WRAPPABLE):
                    problems.append(f"{self.name}: target {t!r} is a {type(module).__name__} at {sites[t].path!r}; "
                                    "LoRA wraps nn.Linear or Conv1D only")
                    break
        if problems:
            raise MethodConfigError("\n".join(problems))

    def apply(self, model: nn.Module, cfg: dict) -> None:
        sites = get_arch(model).sites
        r = ranks(cfg)
        chosen = [t for t in sites if t in r]            # canonical order: same init whatever the list order
        by_path: dict[str, list[str]] = {}
        for t in chosen:
            by_path.setdefault(sites[t].path, []).append(t)
        for block in blocks(model):
            for path, targets in by_path.items():
                base = block.get_submodule(path)
                d_out = base.weight.shape[1] if isinstance(base, Conv1D) else base.weight.shape[0]
                slices = {}
                for t in targets:
                    i, n = sites[t].chunk or (0, 1)
                    slices[t] = slice(i * d_out // n, (i + 1) * d_out // n)
                parent, _, child = path.rpartition(".")
                layer = self.make_layer(base, slices, r, cfg)
                if cfg.get("init_a", "kaiming") == "normal":
                    with torch.no_grad():
                        for a in layer.lora_A.values():
                            a.normal_(0.0, float(getattr(model.config, "initializer_range", 0.02)))
                setattr(block.get_submodule(parent) if parent else block, child, layer)
