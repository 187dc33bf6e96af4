"""How alike are two explanations? Correlations of maps, image by image."""
from __future__ import annotations

import torch


def _flat(a: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(a, torch.Tensor) or a.ndim < 2:
        raise ValueError(f"{name} must be a batch of maps, a tensor (N, ...)")
    return a.detach().flatten(1).double()


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N,)``: Pearson correlation of ``a[n]`` and ``b[n]`` (flattened); 0 where either is constant."""
    x, y = _flat(a, "a"), _flat(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    x, y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    norm = x.norm(dim=1) * y.norm(dim=1)
    return torch.where(norm > 0, (x * y).sum(1) / norm.clamp(min=1e-300), torch.zeros_like(norm)).float()


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 along dim 1, ties given their average rank (as scipy.stats.rankdata)."""
    order = x.argsort(dim=1, stable=True)
    sorted_x = x.gather(1, order)
    ranks = torch.empty_like(x)
    n = x.shape[1]
    for i in range(x.shape[0]):  # average the ranks of tied runs
        values, inverse, counts = torch.unique_consecutive(sorted_x[i], return_inverse=True, return_counts=True)
        ends = counts.cumsum(0).double()
        average = ends - (counts.double() + 1) / 2
        ranks[i, order[i]] = average[inverse]
    return ranks


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N,)``: Spearman rank correlation of ``a[n]`` and ``b[n]`` (Pearson of the ranks, ties averaged)."""
    x, y = _flat(a, "a"), _flat(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return pearson(_ranks(x), _ranks(y))
