"""Sec 7 analyses on synthetic inputs with known answers: φ, LoRA recovering a planted update,
amplification by hand, rank selection."""
import math

import pytest
import torch

from lora_repro.analysis import AnalysisError
from lora_repro.analysis.adapters import LoraFactor, factors_of, layer_index
from lora_repro.analysis.amplification import (
    amplification,
    low_rank_svd,
    paper_rows,
    projection_norm,
    random_directions,
    top_directions,
)
from lora_repro.analysis.rank import paper_rank_table, rank_table, select_rank, target_set
from lora_repro.analysis.subspace import phi, random_baseline, right_singular_basis, subspace_similarity


def _orthonormal(d, k, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))[0]


# --- φ ------------------------------------------------------------------------------------------

def test_phi_of_a_subspace_with_itself_is_one():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 20, generator=g)
    grid = subspace_similarity(right_singular_basis(A), right_singular_basis(A))
    assert torch.allclose(torch.diagonal(grid), torch.ones(6, dtype=torch.float64), atol=1e-10)
    # the top-i subspace lies inside the top-j one for i <= j: φ = ||.||²/min(i, j) = 1 everywhere
    assert torch.allclose(grid, torch.ones_like(grid), atol=1e-10)
    assert phi(A, 3 * A, 2, 5) == pytest.approx(1.0)                 # scale does not change directions


def test_phi_of_orthogonal_subspaces_is_zero():
    Q = _orthonormal(16, 10, seed=1)
    A1 = (Q[:, :4] * torch.tensor([4.0, 3, 2, 1])).T                  # row space = first 4 columns
    A2 = (Q[:, 4:10] * torch.arange(6, 0, -1)).T                      # row space = the next 6
    grid = subspace_similarity(right_singular_basis(A1), right_singular_basis(A2))
    assert grid.shape == (4, 6)
    assert grid.abs().max() < 1e-12


def test_phi_partial_overlap_matches_hand_value_symmetric_and_bounded():
    e = torch.eye(4, dtype=torch.float64)
    A1 = torch.stack([2 * e[0], e[1]])                                 # top direction e0, then e1
    A2 = torch.stack([3 * e[1], 2 * e[2], e[3]])                       # top e1, then e2, then e3
    grid = subspace_similarity(right_singular_basis(A1), right_singular_basis(A2))
    assert grid[0, 0] == pytest.approx(0.0, abs=1e-12)                 # e0 vs e1
    assert grid[1, 0] == pytest.approx(1.0)                            # span(e0, e1) contains e1: 1/min(2,1)
    assert grid[1, 2] == pytest.approx(0.5)                            # ||.||² = 1 (only e1 shared) / 2
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        B1, B2 = torch.randn(5, 12, generator=g), torch.randn(8, 12, generator=g)
        G12 = subspace_similarity(right_singular_basis(B1), right_singular_basis(B2))
        G21 = subspace_similarity(right_singular_basis(B2), right_singular_basis(B1))
        assert torch.allclose(G12, G21.T, atol=1e-12)
        assert G12.min() >= 0 and G12.max() <= 1


def test_random_baseline_is_near_max_ij_over_d():
    grid = random_baseline(8, 64, 256, seed=0)
    assert grid.shape == (8, 64)
    assert 0.0 < float(grid[7, 63]) < 2 * 64 / 256


# --- LoRA recovering a planted low-rank update (Sec 7's premise) --------------------------------

def _planted_problem(d=32, k=3, n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    W0 = torch.randn(d, d, generator=g) / math.sqrt(d)
    U, V = _orthonormal(d, k, seed + 1).float(), _orthonormal(d, k, seed + 2).float()
    s = torch.tensor([4.0, 2.0, 1.0])[:k]                             # distinct: the top directions are defined
    X = torch.randn(n, d, generator=g)
    return W0, U, V, s, X, X @ (W0 + U @ torch.diag(s) @ V.T).T


def _train_lora(W0, X, Y, r, steps=250, seed=1):
    """A [r, d] small Gaussian, B [d, r] zero (the paper's init), Adam on MSE of y = (W0 + BA) x."""
    torch.manual_seed(seed)
    d = W0.shape[0]
    A = torch.nn.Parameter(0.01 * torch.randn(r, d))
    B = torch.nn.Parameter(torch.zeros(d, r))
    opt = torch.optim.Adam([A, B], lr=1e-2)
    for _ in range(steps):
        loss = (X @ (W0 + B @ A).T - Y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return A.detach(), B.detach(), loss.item()


@pytest.mark.parametrize("r", [3, 8])
def test_lora_at_rank_at_least_k_learns_the_planted_subspace(r):
    W0, U, V, s, X, Y = _planted_problem()
    A, B, loss = _train_lora(W0, X, Y, r)
    k = len(s)
    assert loss < 1e-3
    planted = V.double()                                                # right-singular space of ΔW
    learned_A = right_singular_basis(A)[:, :k]
    assert float(subspace_similarity(learned_A, planted)[k - 1, k - 1]) > 0.95
    # the learned update BA spans the planted one (left and right)
    U_dw, _, V_dw = low_rank_svd(B, A)
    assert float(subspace_similarity(V_dw[:, :k], planted)[k - 1, k - 1]) > 0.99
    assert float(subspace_similarity(U_dw[:, :k], U.double())[k - 1, k - 1]) > 0.99


@pytest.mark.parametrize("r", [1, 2])
def test_lora_below_rank_k_captures_only_the_top_planted_directions(r):
    W0, U, V, s, X, Y = _planted_problem()
    A, B, _ = _train_lora(W0, X, Y, r)
    learned = right_singular_basis(A)[:, :r]
    top, bottom = V[:, :r].double(), V[:, r:].double()
    assert float(subspace_similarity(learned, top)[-1, -1]) > 0.95
    assert float(subspace_similarity(learned, bottom)[-1, -1]) < 0.05


# --- amplification (Table 7) --------------------------------------------------------------------

def test_amplification_of_a_planted_update_by_hand():
    W = torch.tensor([[5.0, 0, 0, 0], [0, 3, 1, 2], [0, 0, 2, 0], [0, 0, 0, 1]])
    # r=1, alpha=2 -> scale 2: ΔW = 2 * e2 (0, 0, 3, 4) : ||ΔW||_F = 10, U = e2, V = (0, 0, .6, .8)
    f = LoraFactor(layer=0, target="q", module="enc.layer.0.q", A=torch.tensor([[0.0, 0, 3, 4]]),
                   B=torch.tensor([[0.0], [1], [0], [0]]))
    row = amplification(W, f, scale=2.0, random_dirs=top_directions(torch.eye(4), 1))
    assert row["norm_dW_F"] == pytest.approx(10.0)
    assert row["norm_W_F"] == pytest.approx(math.sqrt(25 + 9 + 1 + 4 + 4 + 1))
    assert row["proj_dW"] == pytest.approx(3 * 0 + 1 * 0.6 + 2 * 0.8)       # |e2ᵀ W V| = 2.2
    assert row["amplification"] == pytest.approx(10 / 2.2)
    import numpy as np
    assert row["proj_W"] == pytest.approx(float(np.linalg.svd(W.numpy(), compute_uv=False)[0]), rel=1e-6)
    U, V = top_directions(W, 1)                                               # the same, by projection
    assert projection_norm(W, U, V) == pytest.approx(row["proj_W"], rel=1e-9)


def test_low_rank_svd_matches_full_svd_and_w_directions_cover_w_at_full_rank():
    g = torch.Generator().manual_seed(5)
    B, A = torch.randn(12, 3, generator=g), torch.randn(3, 9, generator=g)
    U, S, V = low_rank_svd(B, A, scale=0.5)
    dW = 0.5 * B.double() @ A.double()
    assert torch.allclose(U @ torch.diag(S) @ V.T, dW, atol=1e-10)
    assert torch.allclose(S, torch.linalg.svdvals(dW)[:3], atol=1e-10)
    W = torch.randn(12, 9, generator=g)
    full = LoraFactor(0, "q", "m.layer.0", A=torch.randn(9, 9, generator=g), B=torch.randn(12, 9, generator=g))
    assert amplification(W, full, 1.0)["proj_W"] == pytest.approx(float(torch.linalg.matrix_norm(W)), rel=1e-6)


def test_random_directions_are_orthonormal_nested_and_project_like_random_singular_vectors():
    U8, V8 = random_directions((40, 24), 8, seed=3)
    U2, V2 = random_directions((40, 24), 2, seed=3)
    assert torch.allclose(U8.T @ U8, torch.eye(8, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(U8[:, :2].abs(), U2.abs()) and torch.allclose(V8[:, :2].abs(), V2.abs())
    g = torch.Generator().manual_seed(0)
    W = torch.randn(40, 24, generator=g, dtype=torch.float64) + 3.0                 # a W with a dominant direction
    haar = [projection_norm(W, *random_directions((40, 24), 4, seed=s)) ** 2 for s in range(200)]
    svd = [projection_norm(W, *top_directions(torch.randn(40, 24, generator=g), 4)) ** 2 for _ in range(200)]
    expected = float(torch.linalg.matrix_norm(W)) ** 2 * 16 / (40 * 24)          # E||UᵀWV||² for Haar U, V
    assert sum(haar) / 200 == pytest.approx(expected, rel=0.1)
    assert sum(svd) / 200 == pytest.approx(expected, rel=0.1)


def test_paper_table7_rows_reproduce_the_stated_factors():
    rows = {r["r"]: r for r in paper_rows()}
    assert rows[4]["amplification"] == pytest.approx(6.91 / 0.32)            # "21.5" (Sec 7.3)
    assert rows[64]["amplification"] == pytest.approx(3.57 / 1.90)           # "only around 2" (App H.4)
    assert rows[4]["proj_W"] == 21.67 and rows[64]["proj_random"] == 0.33


# --- rank selection (Table 6) -------------------------------------------------------------------

def _rec(r, value, seed, targets=("q", "v"), task="glue/rte", method="lora", status="finished"):
    return dict(run_id=f"{task}-{r}-{seed}-{''.join(targets)}", model="roberta-base", task=task, method=method,
                r=r, targets=list(targets), seed=seed, metrics={"accuracy": value}, main_metric="accuracy",
                status=status)


def test_rank_selection_on_hand_made_records():
    recs = [_rec(1, v, s) for s, v in enumerate([0.700, 0.720, 0.710])]            # median 71.0
    recs += [_rec(2, v, s) for s, v in enumerate([0.752, 0.760, 0.700])]           # median 75.2
    recs += [_rec(4, v, s) for s, v in enumerate([0.740, 0.757, 0.758])]           # median 75.7 (best)
    recs += [_rec(8, v, s) for s, v in enumerate([0.755, 0.756])]                  # median 75.55
    recs += [_rec(8, 0.99, 9, method="ft"), _rec(1, 0.99, 9, status="failed")]     # ignored
    recs += [_rec(8, 0.99, 9, method="adapter_h"), _rec(8, 0.99, 9, method="dora")]  # an r, no low-rank factors
    recs += [_rec(r, v, 0, targets=("v", "q", "k", "o")) for r, v in [(1, 0.9), (8, 0.9)]]
    recs[-1]["method"] = {"name": "lora", "r": 8}                                    # method as its config
    rows, skipped = rank_table(recs, tolerance=0.5)
    assert not skipped
    by = {row["targets"]: row for row in rows}
    assert set(by) == {"q,v", "q,k,v,o"}
    qv = by["q,v"]
    assert qv["best_r"] == 4 and qv["best_median"] == pytest.approx(75.7)
    assert qv["selected_r"] == 2 and qv["selected_median"] == pytest.approx(75.2)  # 75.2 >= 75.7 - 0.5
    assert qv["seeds"] == "3;3;3;2"
    assert rank_table(recs, tolerance=0.4)[0][1]["selected_r"] == 4
    assert by["q,k,v,o"]["selected_r"] == 1                                        # a tie goes to the smaller r
    per_target = _rec({"q": 2, "v": 4}, 0.9, 0)                                     # r per target: no single r
    assert rank_table(recs + [per_target])[1] == [f"{per_target['run_id']}: no integer r (r={{'q': 2, 'v': 4}}) "
                                                  "or no value for main metric 'accuracy'"]


def test_rank_selection_scale_and_paper_table6():
    assert select_rank({1: [70.0], 2: [70.4]})["selected_r"] == 1                  # already in points
    assert select_rank({1: [0.700], 2: [0.704]}, scale="1")["selected_r"] == 1     # 0.004 < 0.5 units
    assert select_rank({1: [0.700], 2: [0.710]})["selected_r"] == 2                # 1 point apart
    assert target_set(["v", "q"]) == target_set("q,v") == "q,v"
    paper = {(row["task"], row["targets"]): row["selected_r"] for row in paper_rank_table()}
    assert paper[("WikiSQL", "q")] == 4        # 68.8, 69.6, 70.5*, 70.4, 70.0: 70.0 is at r=64, r=4 is smallest
    assert paper[("MultiNLI", "q")] == 1       # 90.7 >= 91.1 - 0.5
    assert paper[("WikiSQL", "q,v")] == 1      # 73.4 >= 73.8 - 0.5


def test_rank_selection_without_lora_records_is_a_clear_error():
    with pytest.raises(AnalysisError, match=r"no finished records of a method with low-rank factors \(lora[,)]"):
        rank_table([_rec(8, 0.9, 0, method="bitfit")])


# --- reading adapters ---------------------------------------------------------------------------

def test_layer_index_and_factor_pairing():
    assert layer_index("roberta.encoder.layer.11.attention.self.query") == 11
    assert layer_index("transformer.h.3.attn.c_attn") == 3
    with pytest.raises(AnalysisError, match="layer index"):
        layer_index("classifier.dense")
    lora = {"name": "lora", "r": 2, "alpha": 6}
    state = {"transformer.h.3.attn.c_attn.lora_A.q": torch.zeros(2, 8),
             "transformer.h.3.attn.c_attn.lora_B.q": torch.zeros(8, 2),
             "transformer.h.3.attn.c_attn.lora_A.v": torch.zeros(2, 8),
             "transformer.h.3.attn.c_attn.lora_B.v": torch.zeros(8, 2), "score.weight": torch.zeros(3, 8)}
    factors = factors_of(state, lora)
    assert sorted(factors) == [(3, "q"), (3, "v")] and {f.scale for f in factors.values()} == {3.0}
    with pytest.raises(AnalysisError, match="not a LoRA run"):
        factors_of({"classifier.weight": torch.zeros(2, 2)}, lora)
    with pytest.raises(AnalysisError, match="missing tensor"):
        factors_of({"x.layer.0.q.lora_A.q": torch.zeros(2, 8)}, lora)
    with pytest.raises(AnalysisError, match=r"\[r, d_in\]"):
        factors_of({"x.layer.0.q.lora_A.q": torch.zeros(2, 8), "x.layer.0.q.lora_B.q": torch.zeros(8, 3)}, lora)
    with pytest.raises(AnalysisError, match=r"r=4 but x.layer.0.q target 'q' has rank 2"):
        factors_of({"x.layer.0.q.lora_A.q": torch.zeros(2, 8), "x.layer.0.q.lora_B.q": torch.zeros(8, 2)},
                   {"name": "lora", "r": 4})
    with pytest.raises(AnalysisError, match=r"'adapter_h' run, which has no low-rank factors.*: lora"):
        factors_of(state, {"name": "adapter_h"})
    with pytest.raises(AnalysisError, match=r"layer index.*'x.q'"):
        factors_of({"x.q.lora_A.q": torch.zeros(2, 8), "x.q.lora_B.q": torch.zeros(8, 2)}, lora)
