"""How ΔW relates to W: the paper's Table 7 and its "amplification factor" (Sec 7.3, App H.4).

For each adapted matrix, W is projected onto the r-dimensional subspaces spanned by three sets of
top-r singular directions (of ΔW, of W itself, of a random matrix) and the Frobenius norm of the
projection ``U^⊤ W V`` (r × r) is compared with ||ΔW||_F. The paper writes ``U^⊤ W V^⊤`` with
U, V "the left/right singular-vector matrix"; with V^⊤ meaning the matrix whose ROWS are the right
singular vectors (``Vh`` of ``torch.linalg.svd``) that is ``U^⊤ W Vh^⊤`` = ``U^⊤ W V`` here.

- ΔW directions: a small projection next to a large ||ΔW||_F means ΔW amplifies directions that
  W does not emphasise; amplification factor = ||ΔW||_F / ||U_ΔW^⊤ W V_ΔW||_F (21.5 for GPT-3 at r=4).
- W directions: ||U_W^⊤ W V_W||_F = sqrt(σ_1² + ... + σ_r²) of W (the largest any r × r projection can be).
- Random directions (of a Gaussian matrix): about ||W||_F · r / sqrt(d_out · d_in), the "no
  relation" reference.

ΔW = (alpha / r) · B A is at most rank r, so its SVD is taken exactly from QR factors of B and A^⊤
(an r × r SVD); only W needs a full SVD (its singular values).
"""
from __future__ import annotations

import csv
from pathlib import Path

import torch

from ..paths import paper_csv
from .adapters import AnalysisError, LoraFactor, LoraRun

PAPER_TABLE7 = paper_csv("table7_amplification.csv")


def low_rank_svd(B: torch.Tensor, A: torch.Tensor, scale: float = 1.0):
    """U [d_out, r], S [r], V [d_in, r] of ΔW = scale · B A, exactly, without forming ΔW."""
    Qb, Rb = torch.linalg.qr(B.double())
    Qa, Ra = torch.linalg.qr(A.double().T)
    Uc, S, Vch = torch.linalg.svd(scale * Rb @ Ra.T)
    return Qb @ Uc, S, Qa @ Vch.T


def top_directions(M: torch.Tensor, r: int):
    """The top-r left [d_out, r] and right [d_in, r] singular vectors of M."""
    U, _, Vh = torch.linalg.svd(M.double(), full_matrices=False)
    return U[:, :r], Vh[:r].T


def projection_norm(W: torch.Tensor, U: torch.Tensor, V: torch.Tensor) -> float:
    """||U^⊤ W V||_F: how much of W lies in the subspaces spanned by U (outputs) and V (inputs)."""
    return float(torch.linalg.matrix_norm(U.T @ W.double() @ V))


def amplification(W: torch.Tensor, factor: LoraFactor, scale: float, *, random_dirs=None,
                  w_singular_values: torch.Tensor | None = None) -> dict:
    """Table 7's quantities for one adapted matrix. ``random_dirs`` = (U, V) of a random matrix of
    W's shape (at least r columns); ``w_singular_values`` may be passed when already computed."""
    r = factor.r
    U, S, V = low_rank_svd(factor.B, factor.A, scale)
    norm_dw = float(S.norm())
    if w_singular_values is None:
        w_singular_values = torch.linalg.svdvals(W.double())
    proj_dw = projection_norm(W, U, V)
    row = {
        "r": r, "d_out": W.shape[0], "d_in": W.shape[1],
        "norm_dW_F": norm_dw,
        "norm_W_F": float(torch.linalg.matrix_norm(W.double())),
        "proj_dW": proj_dw,                                          # ||U^⊤ W V^⊤||_F, ΔW's directions
        "proj_W": float(w_singular_values[:r].norm()),               # ... W's own top-r directions
        "proj_random": (projection_norm(W, random_dirs[0][:, :r], random_dirs[1][:, :r])
                        if random_dirs is not None else float("nan")),
        "amplification": norm_dw / proj_dw if proj_dw > 0 else float("inf"),
    }
    return row


def random_directions(shape: tuple[int, int], r: int, seed: int = 0):
    """Top-r singular directions of a random Gaussian matrix of ``shape``, drawn directly: a Gaussian
    matrix's singular vectors are uniformly (Haar) distributed and U is independent of V, so the
    orthonormalised columns of two Gaussian [d, r] draws have exactly their distribution without a
    d × d SVD. Rows are drawn first, so the directions for r are the first r of those for any larger r."""
    d_out, d_in = shape
    draws = []
    for i, d in enumerate((d_out, d_in)):
        g = torch.Generator().manual_seed(seed * 2 + i)
        draws.append(torch.linalg.qr(torch.randn(r, d, generator=g, dtype=torch.float64).T)[0])
    return draws[0], draws[1]


class BaseWeights:
    """The pretrained matrices W of a run's base model, as [d_out, d_in] (nn.Linear orientation).

    Loaded with ``transformers.AutoModel.from_pretrained`` from a hub name or a local directory.
    The adapter's module path (``roberta.encoder.layer.3.attention.self.query``) is looked up in
    the base model with leading components dropped (AutoModel has no ``roberta.`` prefix); GPT-2's
    fused ``c_attn`` (Conv1D, weight [in, out]) gives its q/k/v slice via the architecture map."""

    def __init__(self, source: str | Path):
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        self.source = str(source)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # a checkpoint with a task head loads into AutoModel with "unexpected" keys
        hf_logging.disable_progress_bar()
        try:
            from ..models import resolve_source  # `package:<pkg>/<dir>` checkpoints shipped in a package
            self.model = AutoModel.from_pretrained(resolve_source(self.source))
        except Exception as e:  # noqa: BLE001 -- any loading failure gets the same advice
            raise AnalysisError(
                f"cannot load the pretrained weights of base model {self.source!r} "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Offline, only a local "
                f"checkpoint directory loads, and a model-config name has no weights: pass --base PATH") from e
        finally:
            hf_logging.set_verbosity(verbosity)
            hf_logging.enable_progress_bar()
        self._singular_values: dict[tuple[str, str], torch.Tensor] = {}

    def _module(self, module_path: str):
        parts = module_path.split(".")
        for start in range(len(parts)):
            try:
                return self.model.get_submodule(".".join(parts[start:]))
            except AttributeError:
                continue
        raise AnalysisError(f"base model {self.source!r} has no module matching {module_path!r}")

    def weight(self, factor: LoraFactor) -> torch.Tensor:
        from transformers.pytorch_utils import Conv1D

        from ..methods.arch import ARCHS

        module = self._module(factor.module)
        W = module.weight.detach()
        if isinstance(module, Conv1D):
            W = W.T                                                   # Conv1D stores [in, out]
        d_out, d_in = factor.B.shape[0], factor.A.shape[1]
        if W.shape[1] == d_in and W.shape[0] != d_out:                # a fused projection: take the slice
            arch = ARCHS.get(getattr(self.model.config, "model_type", None))
            site = arch.sites.get(factor.target) if arch else None
            if site is not None and site.chunk is not None and W.shape[0] == site.chunk[1] * d_out:
                W = W.chunk(site.chunk[1], dim=0)[site.chunk[0]]
        if tuple(W.shape) != (d_out, d_in):
            raise AnalysisError(f"{factor.module} target {factor.target!r}: the base weight has shape "
                                f"{tuple(W.shape)} but ΔW = BA is {(d_out, d_in)}; is {self.source!r} the run's base?")
        return W.double()

    def singular_values(self, factor: LoraFactor) -> torch.Tensor:
        key = (factor.module, factor.target)
        if key not in self._singular_values:
            self._singular_values[key] = torch.linalg.svdvals(self.weight(factor))
        return self._singular_values[key]


def run_amplification(run: LoraRun, base: BaseWeights, *, layers: list[int] | None = None,
                      targets: list[str] | None = None, seed: int = 0) -> list[dict]:
    """Table 7's quantities for every (layer, target) of a run."""
    rows, random_cache = [], {}
    for (layer, target), factor in sorted(run.factors.items()):
        if (layers is not None and layer not in layers) or (targets is not None and target not in targets):
            continue
        W = base.weight(factor)
        key = (tuple(W.shape), factor.r)
        if key not in random_cache:
            random_cache[key] = random_directions(key[0], factor.r, seed)
        row = amplification(W, factor, factor.scale, random_dirs=random_cache[key],
                            w_singular_values=base.singular_values(factor))
        rows.append({"run": run.label, "base_model": base.source, "alpha": run.alpha,
                     "layer": layer, "n_layers": len(run.layers),
                     "target": target, **row})
    if not rows:
        raise AnalysisError(f"run {run.label!r}: no adapted matrix left after --layers {layers} --targets "
                            f"{targets}; it adapts layers {run.layers} and targets {run.targets}")
    return rows


def paper_rows(path: Path = PAPER_TABLE7) -> list[dict]:
    """The paper's GPT-3 Table 7, one row per r, in the same columns as ``run_amplification``."""
    by_r: dict[int, dict] = {}
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            r = int(rec["r"])
            row = by_r.setdefault(r, {"run": f"paper: {rec['model']}", "layer": rec["layer"], "target": "q",
                                      "r": r, "norm_dW_F": float(rec["norm_DeltaWq_F"]),
                                      "norm_W_F": float(rec["norm_Wq_F"])})
            key = {"DeltaWq": "proj_dW", "Wq": "proj_W", "Random": "proj_random"}[rec["UV_directions_from"]]
            row[key] = float(rec["norm_UT_Wq_VT_F"])
    for row in by_r.values():
        row["amplification"] = row["norm_dW_F"] / row["proj_dW"]
    return [by_r[r] for r in sorted(by_r)]


def table7_markdown(rows: list[dict], table_layer: int | None = None, with_paper: bool = True) -> str:
    """Table 7 side by side with the paper: one line per run and target at ``table_layer`` (default:
    each run's middle adapted layer, as the paper's layer 48 of 96), plus the amplification factor's
    mean and range over all layers."""
    head = ("| run | layer | target | r | ‖UᵀWVᵀ‖_F, ΔW dirs | W dirs | random dirs | ‖W‖_F | ‖ΔW‖_F | "
            "amplification ‖ΔW‖_F/‖UᵀWVᵀ‖_F | amplification over layers: mean [min, max] |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    if with_paper:
        for p in paper_rows():
            lines.append(f"| {p['run']} | {p['layer']} | {p['target']} | {p['r']} | {p['proj_dW']:.2f} | "
                         f"{p['proj_W']:.2f} | {p['proj_random']:.2f} | {p['norm_W_F']:.2f} | {p['norm_dW_F']:.2f} "
                         f"| {p['amplification']:.1f} | |")
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["run"], row["target"]), []).append(row)
    for (run, target), group in sorted(groups.items(), key=lambda kv: (kv[1][0]["r"], kv[0])):
        layers = sorted(r["layer"] for r in group)
        layer = table_layer if table_layer is not None else layers[len(layers) // 2]
        at = [r for r in group if r["layer"] == layer]
        if not at:
            raise AnalysisError(f"run {run!r} target {target!r} has no layer {layer}; its layers: {layers}")
        x, amps = at[0], [r["amplification"] for r in group]
        lines.append(f"| {run} | {layer} (of {x['n_layers']}) | {target} | {x['r']} | {x['proj_dW']:.3g} | "
                     f"{x['proj_W']:.3g} | {x['proj_random']:.3g} | {x['norm_W_F']:.3g} | {x['norm_dW_F']:.3g} | "
                     f"{x['amplification']:.3g} | {sum(amps) / len(amps):.3g} [{min(amps):.3g}, {max(amps):.3g}] |")
    return "\n".join(lines) + "\n"
