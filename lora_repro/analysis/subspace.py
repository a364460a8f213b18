"""Normalized subspace similarity between two runs' A matrices (paper Sec 7.2, Figures 3 and 4).

    φ(A1, A2, i, j) = ||U_{A1}^{i⊤} U_{A2}^{j}||_F² / min(i, j)   ∈ [0, 1]

U_A^i holds the top-i singular vectors of A. A is [r, d_in] (the paper's A ∈ R^{r×k}), so the
vectors worth comparing between runs of different r are its RIGHT-singular vectors, which span its
row space in R^{d_in}; the left-singular vectors live in R^r and cannot be compared across ranks.
Sec 7.2 says "right-singular unitary matrix", as used here. The paper is not consistent:
Appendix G defines φ through the columns of the LEFT singular matrices (see paper/data/NOTES.md,
"Sec 7 analyses"); read literally that would compare vectors in R^{r1} with vectors in R^{r2}.

φ = 1 when one top subspace contains the other, 0 when they are orthogonal; two random
subspaces of R^d give about max(i, j) / d.
"""
from __future__ import annotations

import torch

from .adapters import AnalysisError, LoraRun


def right_singular_basis(A: torch.Tensor) -> torch.Tensor:
    """[d_in, min(r, d_in)]: A's right-singular vectors as columns, largest singular value first."""
    _, _, Vh = torch.linalg.svd(A.double(), full_matrices=False)
    return Vh.T


def subspace_similarity(Ua: torch.Tensor, Ub: torch.Tensor) -> torch.Tensor:
    """φ for every (i, j): entry [i-1, j-1] compares the first i columns of Ua with the first j of Ub.

    Both inputs have orthonormal columns in the same space, ordered by importance."""
    if Ua.shape[0] != Ub.shape[0]:
        raise AnalysisError(f"subspaces live in different spaces: R^{Ua.shape[0]} vs R^{Ub.shape[0]}")
    overlap = (Ua.double().T @ Ub.double()).pow(2)           # [i_max, j_max] squared cosines
    cumulative = overlap.cumsum(0).cumsum(1)                   # ||Ua^{i⊤} Ub^{j}||_F² for every i, j
    i = torch.arange(1, Ua.shape[1] + 1, dtype=torch.float64)[:, None]
    j = torch.arange(1, Ub.shape[1] + 1, dtype=torch.float64)[None, :]
    return (cumulative / torch.minimum(i, j)).clamp(0.0, 1.0)  # clamp only float round-off


def phi(A1: torch.Tensor, A2: torch.Tensor, i: int, j: int) -> float:
    """φ(A1, A2, i, j) of the paper for one (i, j) (1-based)."""
    return float(subspace_similarity(right_singular_basis(A1), right_singular_basis(A2))[i - 1, j - 1])


def compare_runs(run_a: LoraRun, run_b: LoraRun, layers: list[int] | None = None,
                 targets: list[str] | None = None) -> dict[tuple[int, str], torch.Tensor]:
    """φ grids per (layer, target) between the A matrices of two runs (the same layers and targets)."""
    bases = [(run.config or {}).get("base_model") for run in (run_a, run_b)]
    if all(bases) and bases[0] != bases[1]:
        raise AnalysisError(f"runs {run_a.label!r} and {run_b.label!r} adapt different base models {bases}: their "
                            f"subspaces are not comparable")
    keys_a, keys_b = set(run_a.factors), set(run_b.factors)
    for name, wanted, have in (("layer", layers, set(run_a.layers) | set(run_b.layers)),
                               ("target", targets, set(run_a.targets) | set(run_b.targets))):
        unknown = sorted(set(wanted or ()) - have, key=str)
        if unknown:
            raise AnalysisError(f"{name}(s) {unknown} are not adapted in either run; "
                                f"available: {sorted(have, key=str)}")
    if layers is not None or targets is not None:
        keep = lambda k: (layers is None or k[0] in layers) and (targets is None or k[1] in targets)  # noqa: E731
        keys_a, keys_b = {k for k in keys_a if keep(k)}, {k for k in keys_b if keep(k)}
    if keys_a != keys_b:
        only_a, only_b = sorted(keys_a - keys_b), sorted(keys_b - keys_a)
        raise AnalysisError(f"runs {run_a.label!r} and {run_b.label!r} adapt different (layer, target) pairs: "
                            f"only in {run_a.label!r}: {only_a}; only in {run_b.label!r}: {only_b}. "
                            f"Restrict with --layers / --targets to the ones they share")
    grids = {}
    for key in sorted(keys_a):
        A1, A2 = run_a.factors[key].A, run_b.factors[key].A
        if A1.shape[1] != A2.shape[1]:
            raise AnalysisError(f"layer {key[0]} target {key[1]!r}: A has d_in {A1.shape[1]} in {run_a.label!r} "
                                f"but {A2.shape[1]} in {run_b.label!r}; are they the same base model?")
        grids[key] = subspace_similarity(right_singular_basis(A1), right_singular_basis(A2))
    return grids


def random_baseline(r1: int, r2: int, d_in: int, seed: int = 0) -> torch.Tensor:
    """φ between two random Gaussian matrices of the runs' shapes (Figure 4, right)."""
    g = torch.Generator().manual_seed(seed)
    A1 = torch.randn(r1, d_in, generator=g, dtype=torch.float64)
    A2 = torch.randn(r2, d_in, generator=g, dtype=torch.float64)
    return subspace_similarity(right_singular_basis(A1), right_singular_basis(A2))


def grid_rows(grid: torch.Tensor, **fields) -> list[dict]:
    """Long-format rows (1-based i, j) for a CSV."""
    return [{**fields, "i": i + 1, "j": j + 1, "phi": float(grid[i, j])}
            for i in range(grid.shape[0]) for j in range(grid.shape[1])]
