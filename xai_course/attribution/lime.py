"""LIME (chapter 7): a weighted linear surrogate fitted to the model on random coalitions of segments.

Ribeiro, Singh & Guestrin (2016), "Why Should I Trust You?". The explanation of f at x is the
interpretable model g that solves (slide 003)

    ξ(x) = argmin_{g ∈ G}  L(f, g, π_x) + Ω(g),

with G the linear models on binary indicators z ∈ {0, 1}^M of M segments (z_m = 1: segment m kept,
0: filled from the baseline), the locality-weighted square loss

    L(f, g, π_x) = Σ_s π_x(z_s) (f(x̃(z_s)) - g(z_s))²,   g(z) = b + Σ_m β_m z_m,

the exponential kernel π_x(z) = exp(-d(z, 1)² / (2 σ²)) on the cosine distance d between z and the
all-ones vector (the unperturbed image), σ = ``kernel_width``, and the ridge penalty Ω(g) = α ‖β‖².
The recipe: segment, sample coalitions z_s (each segment kept with probability ½, the first sample the
image itself), evaluate the model on the perturbed images (the masked-evaluation engine), weigh them,
fit. β is the attribution of each segment; the weighted R² of the fit is the "explanation fit".
These are the lime library's defaults (its kernel √exp(-d²/σ²) is the same function).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn

from ._core import Target, check_call, register
from ._core import check_int, make_generator
from .masking import check_batch_size, check_segments, default_batch_size, masked_outputs, paint


class Surrogate(NamedTuple):
    """The fitted g per example: ``coefficients`` (N, M) (0 past an example's own segment count),
    ``intercept`` (N,) and ``score`` (N,), the weighted R² of the fit."""
    coefficients: torch.Tensor
    intercept: torch.Tensor
    score: torch.Tensor


def kernel_weights(z: torch.Tensor, kernel_width: float) -> torch.Tensor:
    """π(z) = exp(-d² / (2σ²)), d the cosine distance between each row of z (S, M) and all ones."""
    kept = z.double().sum(1)
    distance = torch.where(kept > 0, 1 - torch.sqrt(kept / z.shape[1]), torch.ones_like(kept))
    return torch.exp(-distance ** 2 / (2 * kernel_width ** 2))


def weighted_ridge(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, alpha: float):
    """argmin Σ_s w_s (y_s - b - X_s β)² + α ‖β‖² (intercept unpenalised, as scikit-learn's Ridge):
    returns β, b and the weighted R² of the fit."""
    mean_x, mean_y = w @ X / w.sum(), w @ y / w.sum()
    Xc, yc = X - mean_x, y - mean_y
    A = Xc.T @ (w[:, None] * Xc) + alpha * torch.eye(X.shape[1], dtype=X.dtype)
    beta = torch.linalg.lstsq(A, Xc.T @ (w * yc)).solution if alpha == 0 else torch.linalg.solve(A, Xc.T @ (w * yc))
    residual = yc - Xc @ beta
    total = w @ yc ** 2
    score = 1 - (w @ residual ** 2) / total if total > 0 else torch.ones((), dtype=X.dtype)
    return beta, mean_y - mean_x @ beta, score


@register("lime")
def lime(model: nn.Module, inputs: torch.Tensor, target: Target, segments=None, samples: int = 1000,
         kernel_width: float = 0.25, alpha: float = 1.0, baseline="mean", seed: Optional[int] = None,
         batch_size: Optional[int] = None, return_surrogate: bool = False):
    """LIME attributions: each element holds its segment's surrogate coefficient β_m (chapter 7).

    ``segments``: labels (N, H, W) / (H, W) (or (N, D) / (D,) for flat inputs; default
    :func:`superpixels`); ``baseline`` fills a removed segment (``"mean"``: its own mean colour, a
    number, a baseline name or a tensor). ``samples`` coalitions per example (the first one keeps
    everything), drawn from ``seed``; ``kernel_width`` σ and ``alpha`` α as in the module doc. The model
    sees at most ``batch_size`` perturbed inputs at once (default: the engine's, about 2¹⁸ input elements). With
    ``return_surrogate`` also returns a :class:`Surrogate` (coefficients, intercept, score).
    """
    model, inputs, target = check_call(model, inputs, target)
    samples = check_int(samples, "samples", minimum=2)
    if not isinstance(kernel_width, (int, float)) or isinstance(kernel_width, bool) or not kernel_width > 0:
        raise ValueError(f"kernel_width must be a number > 0, got {kernel_width!r}")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha >= 0:
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
    batch_size = check_batch_size(batch_size) or default_batch_size(inputs)
    segments, counts = check_segments(segments, inputs)
    n, m = inputs.shape[0], int(counts.max())
    generator = make_generator(seed, inputs.device)
    z = torch.rand((n, samples, m), generator=generator, device=inputs.device) < 0.5
    z[:, 0] = True                                              # the first sample: the image itself
    z &= torch.arange(m, device=inputs.device) < counts[:, None, None]   # labels an image lacks: off
    f = masked_outputs(model, inputs, target, z, segments, baseline, batch_size).double().cpu()
    coefficients = torch.zeros(n, m, dtype=torch.float64)
    intercept, score = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        X = z[i, :, :int(counts[i])].double().cpu()
        beta, intercept[i], score[i] = weighted_ridge(X, f[i], kernel_weights(X, kernel_width), float(alpha))
        coefficients[i, :len(beta)] = beta
    coefficients = coefficients.to(inputs.device, inputs.dtype)
    attributions = paint(coefficients, segments, inputs)
    if not return_surrogate:
        return attributions
    return attributions, Surrogate(coefficients, intercept.to(inputs.device, inputs.dtype),
                                   score.to(inputs.device, inputs.dtype))
