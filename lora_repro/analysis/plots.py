"""Heat maps of φ(i, j) in the style of the paper's Figures 3 and 4 (files only: matplotlib Agg)."""
from __future__ import annotations

import math
from pathlib import Path

import torch


def heatmap_grid(panels: list[tuple[str, torch.Tensor]], path: str | Path, *, ylabel: str, xlabel: str,
                 title: str, ncols: int = 4) -> Path:
    """One heat map per panel (rows i = 1.., columns j = 1..), colour scale fixed to [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    wide = max(g.shape[1] for _, g in panels) > 16
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * (4.6 if wide else 3.0), nrows * 2.8 + 0.6),
                             squeeze=False, constrained_layout=True)
    image = None
    for ax, (name, grid) in zip(axes.flat, panels):
        rows, cols = grid.shape
        image = ax.imshow(grid.numpy(), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto", origin="upper",
                          interpolation="nearest", extent=(0.5, cols + 0.5, rows + 0.5, 0.5))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_xticks(_ticks(cols))
        ax.set_yticks(_ticks(rows))
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.colorbar(image, ax=axes, shrink=0.8, label="φ(i, j)")
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _ticks(n: int) -> list[int]:
    """1-based ticks: every index when few, else 1 and multiples of a power-of-two step (~8 ticks)."""
    if n <= 8:
        return list(range(1, n + 1))
    step = 2 ** math.ceil(math.log2(n / 8))
    return sorted({1, *range(step, n + 1, step), n})
