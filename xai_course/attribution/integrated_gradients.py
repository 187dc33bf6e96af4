"""Integrated Gradients and GradientSHAP (chapter 4): gradients averaged along a path from a baseline.

Sundararajan, Taly & Yan (2017), "Axiomatic Attribution for Deep Networks". For the straight path
γ(α) = x' + α (x - x') from the baseline x' to the input x,

    IG_i(x) = (x_i - x'_i) ∫_0^1 ∂F(x' + α (x - x')) / ∂x_i dα  ≈  (x_i - x'_i) Σ_k w_k ∂F(x' + α_k (x - x'))/∂x_i,

and completeness holds: Σ_i IG_i(x) = F(x) - F(x'). The quadrature (α_k, w_k) is one of

- ``"riemann_left"`` α_k = k/m, ``"riemann_right"`` α_k = (k+1)/m, ``"riemann_middle"`` α_k = (k+½)/m,
  all with w_k = 1/m (k = 0..m-1);
- ``"riemann_trapezoid"`` α_k = k/(m-1) with w_k = 1/(m-1), the two ends halved (weights sum to 1).
  Captum's trapezoid uses w_k = 1/m instead (its weights sum to 1 - 1/m, so its attributions are
  (m-1)/m of these);
- ``"gausslegendre"`` (the default, as in Captum): the m-point Gauss-Legendre rule mapped to [0, 1].

GradientSHAP (Lundberg & Lee, 2017) is the same integrand sampled at random: a random baseline from a
set, a random α ~ U(0, 1) and optional Gaussian noise on the input, averaged over ``samples`` draws;
its expectation is the IG attribution averaged over the baselines (expected gradients).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import nn

from ._core import (Target, batches, check_batch_size, check_call, check_int, check_number, explaining, fast_layout,
                    make_generator, register, target_logits)
from .baselines import Baseline, make_baseline

# the integration rules (quadratures) of ``integrated_gradients(method=...)``; not the registry METHODS
RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def quadrature(method: str, steps: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Points α_k in [0, 1] and weights w_k (float64) of an integration rule with ``steps`` points."""
    if method not in RULES:
        raise ValueError(f"method must be one of {', '.join(map(repr, RULES))}, got {method!r}")
    m = check_int(steps, "steps", minimum=2)
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(m)
        return torch.from_numpy(0.5 * (nodes + 1)), torch.from_numpy(0.5 * weights)
    if method == "riemann_trapezoid":
        weights = torch.full((m,), 1.0 / (m - 1), dtype=torch.float64)
        weights[[0, -1]] /= 2
        return torch.linspace(0, 1, m, dtype=torch.float64), weights
    offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
    return (torch.arange(m, dtype=torch.float64) + offset) / m, torch.full((m,), 1.0 / m, dtype=torch.float64)


def path_gradients(model, inputs, baseline, target, alphas, weights, batch_size):
    """Σ_k w_k ∇F(x' + α_k (x - x')) per example, evaluating at most ``batch_size`` path points per pass."""
    n = inputs.shape[0]
    total = torch.zeros_like(inputs)
    difference = inputs - baseline
    alphas, weights = alphas.to(inputs), weights.to(inputs)
    shape = (-1,) + (1,) * inputs.ndim
    total_points = len(alphas) * n                          # path point j = k n + i: step k of example i
    for start, end in batches(total_points, batch_size):
        first, last = start // n, (end - 1) // n + 1         # the steps this chunk touches
        a, w = alphas[first:last].view(shape), weights[first:last].view(shape)
        points = (baseline + a * difference).flatten(0, 1)[start - first * n:end - first * n].requires_grad_(True)
        i = torch.arange(start, end, device=inputs.device) % n
        logits = target_logits(model, points.clone(), target[i])
        (grads,) = torch.autograd.grad(logits.sum(), points)
        if start != first * n or end != last * n:           # a chunk with part of a step: pad it with zeros
            grads = torch.cat([grads.new_zeros(start - first * n, *inputs.shape[1:]), grads,
                               grads.new_zeros(last * n - end, *inputs.shape[1:])])
        total += (w * grads.view(last - first, *inputs.shape)).sum(0)
    return total


@register("integrated_gradients")
def integrated_gradients(model: nn.Module, inputs: torch.Tensor, target: Target, baseline: Baseline = None,
                         steps: int = 50, method: str = "gausslegendre", batch_size: Optional[int] = None,
                         return_delta: bool = False):
    """Integrated gradients (x - x') · Σ_k w_k ∇F(x' + α_k (x - x')) (chapter 4).

    ``baseline``: x', a name of :func:`make_baseline` or a tensor (default zeros). ``method`` and
    ``steps``: the quadrature (see the module doc). ``batch_size``: at most this many path points per
    forward pass (memory bound; default: all ``steps × N`` in one pass). With ``return_delta`` also
    returns the completeness error Σ_i IG_i - (F(x) - F(x')) per example.
    """
    model, inputs, target = check_call(model, inputs, target)
    alphas, weights = quadrature(method, steps)
    batch_size = check_batch_size(batch_size)
    x, x_ref = inputs.detach(), make_baseline(inputs, baseline)
    with explaining(model):
        attributions = (x - x_ref) * path_gradients(model, x, x_ref, target, alphas, weights, batch_size)
        if not return_delta:
            return attributions
        with torch.no_grad():
            ends = target_logits(model, torch.cat([x, x_ref]), torch.cat([target, target]))
    return attributions, attributions.flatten(1).sum(1) - (ends[:len(x)] - ends[len(x):])


def range_noise(inputs: torch.Tensor, noise: float, samples: int, generator) -> torch.Tensor:
    """Gaussian noise (N, samples, ...) of standard deviation ``noise × (max - min)`` of each example."""
    spread = inputs.detach().flatten(1)
    sigma = noise * (spread.max(1).values - spread.min(1).values).view(-1, *[1] * inputs.ndim)
    draws = torch.randn((inputs.shape[0], samples, *inputs.shape[1:]), generator=generator,
                        device=inputs.device, dtype=inputs.dtype)
    return draws * sigma


@register("gradient_shap")
def gradient_shap(model: nn.Module, inputs: torch.Tensor, target: Target, baselines: torch.Tensor,
                  samples: int = 5, noise: float = 0.0, seed: Optional[int] = None) -> torch.Tensor:
    """GradientSHAP: the mean over ``samples`` draws of (x̃ - x'_b) · ∇F(x'_b + α (x̃ - x'_b)) (chapter 4).

    Per draw: a baseline x'_b picked uniformly from ``baselines`` (B, *input shape), α ~ U(0, 1), and
    x̃ = x + ε with ε ~ N(0, σ²), σ = ``noise`` × (max - min) of the example (0: no noise; Captum's
    ``stdevs`` is the absolute σ). ``seed`` makes the draws reproducible.
    """
    model, inputs, target = check_call(model, inputs, target)
    expected = f"a tensor (B, {', '.join(map(str, inputs.shape[1:]))})"
    if not isinstance(baselines, torch.Tensor):
        raise TypeError(f"baselines must be {expected}, got {type(baselines).__name__}")
    if baselines.ndim != inputs.ndim or baselines.shape[1:] != inputs.shape[1:] or len(baselines) == 0:
        raise ValueError(f"baselines must be {expected} with B >= 1, got shape {tuple(baselines.shape)}")
    samples = check_int(samples, "samples")
    noise = check_number(noise, "noise", meaning="a fraction of each input's range")
    references = make_baseline(baselines, baselines, name="baselines").to(inputs.dtype)
    n, generator = inputs.shape[0], make_generator(seed, inputs.device)
    noisy = inputs.detach().unsqueeze(1) + range_noise(inputs, float(noise), samples, generator)
    picks = torch.randint(len(references), (n, samples), generator=generator, device=inputs.device)
    alpha = torch.rand((n, samples) + (1,) * (inputs.ndim - 1), generator=generator, device=inputs.device,
                       dtype=inputs.dtype)
    return expected_gradients(model, noisy, references[picks], alpha, target)


def expected_gradients(model, noisy, references, alpha, target) -> torch.Tensor:
    """Mean over draws s of (x̃_s - x'_s) · ∇F(x'_s + α_s (x̃_s - x'_s)), all draws in one pass.

    ``noisy`` and ``references`` (N, S, ...), ``alpha`` (N, S, 1, ...): GradientSHAP for given draws.
    """
    samples = noisy.shape[1]
    with explaining(model):
        points = (references + alpha * (noisy - references)).flatten(0, 1).requires_grad_(True)
        logits = target_logits(model, points.clone(memory_format=fast_layout(points, model)),
                               target.repeat_interleave(samples))
        (grads,) = torch.autograd.grad(logits.sum(), points)
    return ((noisy - references) * grads.view_as(noisy)).mean(1)
