"""Exact Shapley values and Kernel SHAP on segments (chapter 8).

The players are the M segments (superpixels); the value of a coalition z ⊆ {1..M} is the target
score with only the segments in z kept, v(z) = f(z ⊙ x + (1 - z) ⊙ x'). Shapley (1953):

    φ_i = Σ_{z ⊆ M∖{i}} |z|! (M - |z| - 1)! / M! · [v(z ∪ {i}) - v(z)],

the only attribution with efficiency (Σ φ_i = v(M) - v(∅)), symmetry, dummy and additivity.
:func:`shapley_values` enumerates all 2^M coalitions. Kernel SHAP (Lundberg & Lee 2017) gets the
same numbers as a weighted linear regression: φ minimises

    Σ_z π(z) (v(z) - v(∅) - Σ_i φ_i z_i)²   subject to Σ_i φ_i = v(M) - v(∅),
    π(z) = (M - 1) / (C(M, |z|) |z| (M - |z|))          (the Shapley kernel),

exactly when all coalitions are in the sum. :func:`kernel_shap` spends its budget of model calls
like this: complementary pairs of coalitions (z and its complement, Covert & Lee 2021); an equal
share of the budget for every coalition size, drawn without replacement, so the sizes with few
coalitions (|z| = 1, M - 1, ...) are enumerated exactly, which is sampling in proportion to the
leverage scores of the regression (Musco & Witter 2025); each drawn coalition of size s weighs
the whole kernel mass of its size, π(s) C(M, s), over the number drawn.
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Optional

import torch
from torch import nn

from ._core import Target, check_call, register
from .baselines import Baseline
from ._core import check_int, make_generator
from .masking import check_batch_size, check_segments, coalition_keep, evaluate, make_fill, paint

MAX_EXACT = 20


def all_coalitions(m: int, device=None) -> torch.Tensor:
    """Every coalition of m players as a boolean (2^m, m) tensor; row k holds the bits of k."""
    k = torch.arange(2 ** m, device=device)
    return (k[:, None] >> torch.arange(m, device=device)) & 1 == 1


def shapley_from_values(v: torch.Tensor, m: int) -> torch.Tensor:
    """φ (n, m) from the values v (n, 2^m) of every coalition in the order of :func:`all_coalitions`."""
    size = all_coalitions(m, v.device).sum(1)
    s = torch.arange(m, dtype=torch.float64, device=v.device)
    w = torch.exp(torch.lgamma(s + 1) + torch.lgamma(m - s) - math.lgamma(m + 1))   # s!(m-s-1)!/m!
    w_with = w[(size - 1).clamp(min=0)]        # z contains i: weight of the coalition z ∖ {i}
    w_without = w[size.clamp(max=m - 1)]       # z lacks i: weight of z itself
    phi = []
    for i in range(m):
        has_i = (torch.arange(2 ** m, device=v.device) >> i) & 1 == 1
        phi.append(v @ torch.where(has_i, w_with, -w_without))
    return torch.stack(phi, 1)


def by_segment_count(counts: torch.Tensor):
    """Groups of examples with the same number of segments M: (M, indices)."""
    for m in counts.unique().tolist():
        yield m, (counts == m).nonzero()[:, 0]


def prepare(model, inputs, target, segments, baseline, batch_size):
    model, inputs, target = check_call(model, inputs, target)
    check_batch_size(batch_size)
    segments, counts = check_segments(segments, inputs)
    return model, inputs, target, segments, counts, make_fill(inputs, baseline, segments)


def coalition_values(model, inputs, target, fill, segments, masks, batch_size):
    """v(z) (n, S) float64 for coalitions ``masks`` (n, S, M) of each example's segments."""
    keep = coalition_keep(masks, segments, inputs)
    return evaluate(model, inputs, target, fill, keep, masks.shape[1], batch_size).double()


@register("shapley_values")
def shapley_values(model: nn.Module, inputs: torch.Tensor, target: Target, segments=None,
                   baseline: Baseline = 0.0, batch_size: Optional[int] = None) -> torch.Tensor:
    """Exact Shapley values of the segments, by evaluating all 2^M coalitions (chapter 8).

    ``segments``: labels (N, H, W) / (H, W), or (N, D) / (D,) for flat inputs (None: superpixels, one
    segment per feature for flat inputs); at most 20 segments. ``baseline``: what a removed segment
    becomes (a number, ``"mean"``: its mean colour, a baseline name or a tensor like ``inputs``).
    Each element of the result holds its segment's value; they sum to f(x) - f(x').
    """
    model, inputs, target, segments, counts, fill = prepare(model, inputs, target, segments, baseline,
                                                            batch_size)
    if int(counts.max()) > MAX_EXACT:
        raise ValueError(f"segments: exact Shapley values enumerate 2^M coalitions, so at most {MAX_EXACT} "
                         f"segments, got {int(counts.max())} (use kernel_shap, or fewer superpixels)")
    values = torch.zeros(len(inputs), int(counts.max()), dtype=torch.float64, device=inputs.device)
    for m, idx in by_segment_count(counts):
        masks = all_coalitions(m, inputs.device).expand(len(idx), -1, -1)
        v = coalition_values(model, inputs[idx], target[idx], fill[idx], segments[idx], masks, batch_size)
        values[idx, :m] = shapley_from_values(v, m)
    return paint(values, segments, inputs)


# ---------------------------------------------------------------- Kernel SHAP
def allocate(m: int, budget: int) -> list:
    """Coalitions to draw per size s = 1..m-1 (index s - 1) from ``budget``: the same number for every
    size, drawn in complementary pairs, capped at C(m, s) (water filling: a size with fewer coalitions
    than its share is enumerated and the rest is shared again); leftover pairs go to the small sizes."""
    units = range(1, m // 2 + 1)                  # unit u: sizes u and m - u, one complementary pair each
    middle = lambda u: 2 * u == m                 # noqa: E731  (the middle size pairs with itself)
    cap = {u: math.comb(m, u) // (2 if middle(u) else 1) for u in units}
    share = {u: 0.5 if middle(u) else 1.0 for u in units}   # pairs per unit per coalition of one size
    pairs, left, open_units = {u: 0 for u in units}, budget // 2, sorted(units, key=lambda u: cap[u] / share[u])
    while open_units and left > 0:
        level = left / sum(share[u] for u in open_units)
        if cap[open_units[0]] <= share[open_units[0]] * level:
            u = open_units.pop(0)
            pairs[u], left = cap[u], left - cap[u]
            continue
        for u in open_units:
            pairs[u] = int(share[u] * level)
        left -= sum(pairs[u] for u in open_units)
        for u in sorted(open_units):              # the remainder: one more pair to the smallest sizes
            if left > 0 and pairs[u] < cap[u]:
                pairs[u], left = pairs[u] + 1, left - 1
        break
    counts = [0] * (m - 1)
    for u in units:
        counts[u - 1] = counts[m - u - 1] = 2 * pairs[u] if middle(u) else pairs[u]
    return counts


@functools.lru_cache(maxsize=128)
def combinations(m: int, s: int) -> torch.Tensor:
    """Every coalition of size s of m players as index rows (C(m, s), s), in lexicographic order.

    Cached: building it from Python tuples costs more than Kernel SHAP's own arithmetic (1.5 ms for
    C(16, 8) = 12,870 rows); callers index it and never change it in place.
    """
    return torch.tensor(list(itertools.combinations(range(m), s)), dtype=torch.long).reshape(-1, s)


def draw_size(m: int, s: int, count: int, generator, device) -> torch.Tensor:
    """``count`` distinct coalitions of size s (boolean (count, m)), closed under complement when s = m/2
    (``count`` even). Uniform without replacement."""
    if count == 0:
        return torch.zeros(0, m, dtype=torch.bool, device=device)
    pairs = 2 * s == m
    total = math.comb(m, s) // (2 if pairs else 1)
    want = count // 2 if pairs else count
    if total <= 200_000:                          # enumerate and pick a random subset
        index = combinations(m, s).to(device)
        if pairs:
            index = index[index[:, 0] == 0]        # one of each complementary pair: the one with player 0
        index = index[torch.randperm(len(index), generator=generator, device=device)[:want]]
        z = torch.zeros(len(index), m, dtype=torch.bool, device=device).scatter_(1, index, True)
    else:                                         # far more coalitions than draws: reject duplicates
        found, codes = [], set()
        while len(found) < want:
            order = torch.rand(2 * want, m, generator=generator).argsort(1)
            z = torch.zeros(2 * want, m, dtype=torch.bool).scatter_(1, order[:, :s], True)
            if pairs:
                z = torch.where(z[:, :1], z, ~z)
            for row in z:
                code = row.numpy().tobytes()
                if code not in codes and len(found) < want:
                    codes.add(code)
                    found.append(row)
        z = torch.stack(found).to(device)
    return torch.cat([z, ~z]) if pairs else z


def sample_coalitions(m: int, budget: int, generator, device):
    """Coalitions (S, m) and regression weights (S,) for a budget of ``budget`` interior coalitions."""
    counts = allocate(m, budget)
    rows, weights = [], []
    for s in range(1, (m + 1) // 2 + (m % 2 == 0)):
        n = min(counts[s - 1], counts[m - s - 1])
        z = draw_size(m, s, n, generator, device)
        if 2 * s != m:
            z = torch.cat([z, ~z])
        rows.append(z)
        mass = (m - 1) / (s * (m - s))            # π(s) C(m, s): the kernel mass of one size
        weights.append(torch.full((len(z),), mass / max(n, 1), dtype=torch.float64, device=device))
    return torch.cat(rows), torch.cat(weights)


def constrained_regression(z, w, v, v_empty, v_full):
    """Kernel SHAP's weighted least squares with Σ φ = v_full - v_empty, for n examples at once.

    z (n, S, m), w (n, S), v (n, S). KKT system [[A, 1], [1ᵀ, 0]] [φ; λ] = [b; Δ] with A = Zᵀ W Z and
    b = Zᵀ W (v - v_empty), solved by least squares (minimum norm where the draws leave it singular);
    the last line restores efficiency to float64 precision.
    """
    n, _, m = z.shape
    zw = z.double() * w[..., None]
    a = zw.transpose(1, 2) @ z.double()
    b = (zw * (v - v_empty[:, None])[..., None]).sum(1)
    delta = v_full - v_empty
    kkt = torch.zeros(n, m + 1, m + 1, dtype=torch.float64, device=z.device)
    kkt[:, :m, :m], kkt[:, :m, m], kkt[:, m, :m] = a, 1.0, 1.0
    rhs = torch.cat([b, delta[:, None]], 1)
    scale = a.diagonal(dim1=1, dim2=2).mean(1).clamp(min=1e-300)[:, None, None]   # condition the system
    kkt[:, :m, :m] /= scale
    rhs[:, :m] /= scale[:, :, 0]
    phi = torch.linalg.lstsq(kkt.cpu(), rhs.cpu()[..., None], driver="gelsd").solution[:, :m, 0].to(z.device)
    return phi + ((delta - phi.sum(1)) / m)[:, None]


@register("kernel_shap")
def kernel_shap(model: nn.Module, inputs: torch.Tensor, target: Target, segments=None, samples: int = 1000,
                baseline: Baseline = 0.0, seed: Optional[int] = None,
                batch_size: Optional[int] = None) -> torch.Tensor:
    """Kernel SHAP: Shapley values of the segments from ``samples`` model calls per example (chapter 8).

    ``samples`` counts every evaluation, f(x) and f(x') included (at least 2); with
    ``samples >= 2**M`` all coalitions are evaluated and the result equals :func:`shapley_values`.
    Efficiency (the values sum to f(x) - f(x')) holds exactly for every budget. ``segments``,
    ``baseline``, ``batch_size`` as in :func:`shapley_values`; ``seed`` makes the draws reproducible.
    """
    model, inputs, target, segments, counts, fill = prepare(model, inputs, target, segments, baseline,
                                                            batch_size)
    samples = check_int(samples, "samples", minimum=2)  # model calls per example, f(x) and f(x') included
    generator = make_generator(seed, "cpu")
    values = torch.zeros(len(inputs), int(counts.max()), dtype=torch.float64, device=inputs.device)
    for m, idx in by_segment_count(counts):
        x, t, f, seg = inputs[idx], target[idx], fill[idx], segments[idx]
        if samples >= 2 ** m:
            masks = all_coalitions(m, inputs.device).expand(len(idx), -1, -1)
            values[idx, :m] = shapley_from_values(coalition_values(model, x, t, f, seg, masks, batch_size), m)
            continue
        draws = [sample_coalitions(m, samples - 2, generator, "cpu") for _ in idx]
        ends = torch.stack([torch.zeros(m, dtype=torch.bool), torch.ones(m, dtype=torch.bool)])
        z = torch.stack([torch.cat([ends, d[0]]) for d in draws]).to(inputs.device)
        w = torch.stack([d[1] for d in draws]).to(inputs.device)
        v = coalition_values(model, x, t, f, seg, z, batch_size)
        values[idx, :m] = constrained_regression(z[:, 2:], w, v[:, 2:], v[:, 0], v[:, 1])
    return paint(values, segments, inputs)
