"""Chapter 8: exact Shapley values and Kernel SHAP on segments.

Exact values against a brute-force enumeration of the formula and against the shap library's exact
explainer; Kernel SHAP against Captum's KernelShap fed the same coalitions and weights (Captum solves
the same weighted regression, with the two end points weighted 10^6 instead of constrained) and
against the exact values when it enumerates; known answers on a model additive in the segments;
efficiency, symmetry, dummy, determinism; the sampling design; hygiene and bad input.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from captum.attr import KernelShap
from torch import nn

from conftest import make
from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from xai_course.attribution import METHODS, count_passes
from xai_course.attribution.masking import make_fill, masked_outputs, superpixels
from xai_course.attribution.shapley import (all_coalitions, allocate, kernel_shap, sample_coalitions,
                                            shapley_values)


def per_segment(a, segments):
    """(N, M) from painted values: the value at the first element of each segment (0: no such segment)."""
    flat, seg = a.flatten(1) if a.ndim == 2 else a[:, 0].flatten(1), segments.flatten(1)
    m = int(seg.max()) + 1
    out = torch.zeros(len(flat), m, dtype=torch.float64)
    for n in range(len(flat)):
        for k in seg[n].unique().tolist():
            out[n, k] = flat[n, (seg[n] == k).nonzero()[0, 0]].double()
    return out


def brute_force(model, x, target, segments, baseline):
    """φ_i by the formula: the weighted sum of marginal contributions over all coalitions without i."""
    m = int(segments.max()) + 1
    values = {}
    for bits in itertools.product([False, True], repeat=m):
        masks = torch.tensor(bits)[None]
        values[bits] = masked_outputs(model, x, target, masks, segments, baseline=baseline).double()[0, 0]
    phi = []
    for i in range(m):
        total = 0.0
        for bits, v in values.items():
            if not bits[i]:
                s = sum(bits)
                weight = math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m)
                total += weight * (values[bits[:i] + (True,) + bits[i + 1:]] - v)
        phi.append(total)
    return torch.stack(phi)


CASES = [("mlp", None, 0.0), ("sigmoid_mlp", torch.tensor([0, 1, 1, 2, 3, 3]), 0.3),
         ("resnet_style", "grid", "mean"), ("functional_cnn", "grid", 0.5)]


def case(arch, segments, n=2):
    model, x, target = make(arch, n=n)
    if isinstance(segments, str):
        segments = superpixels(x, "grid", cells=(2, 3))
    if segments is None:
        segments = torch.arange(x.shape[1]) % 7      # 7 segments of the 10 MLP features
    return model, x, target, segments


@pytest.mark.parametrize("arch, segments, baseline", CASES)
def test_exact_values_equal_brute_force(arch, segments, baseline):
    model, x, target, segments = case(arch, segments)
    got = shapley_values(model, x, target, segments, baseline=baseline)
    seg = segments.expand(len(x), *segments.shape[-(x.ndim - 2 if x.ndim == 4 else 1):]) \
        if segments.ndim < 2 or (x.ndim == 4 and segments.ndim == 2) else segments
    for n in range(len(x)):
        expected = brute_force(model, x[n:n + 1], target[n:n + 1], seg[n], baseline)
        torch.testing.assert_close(per_segment(got[n:n + 1], seg[n:n + 1])[0], expected, rtol=1e-5,
                                   atol=1e-6 * expected.abs().max().item())


def test_exact_values_equal_the_shap_library():
    shap = pytest.importorskip("shap")
    model, x, target, segments = case("resnet_style", "grid")
    seg = segments
    got = per_segment(shapley_values(model, x, target, seg), seg)
    for n in range(len(x)):
        def f(z, n=n):
            return masked_outputs(model, x[n:n + 1], target[n:n + 1], torch.from_numpy(z > 0.5)[None],
                                  seg[n:n + 1]).numpy()[0]
        explainer = shap.explainers.Exact(f, shap.maskers.Independent(np.zeros((1, 6)), max_samples=1))
        theirs = torch.from_numpy(explainer(np.ones((1, 6))).values[0])
        torch.testing.assert_close(got[n], theirs, rtol=1e-5, atol=1e-6 * theirs.abs().max().item())


@pytest.mark.parametrize("arch, segments, baseline", CASES)
def test_kernel_shap_enumerates_and_equals_exact_values(arch, segments, baseline):
    model, x, target, segments = case(arch, segments)
    exact = shapley_values(model, x, target, segments, baseline=baseline)
    m = 7 if arch == "mlp" else int(segments.max()) + 1
    torch.testing.assert_close(kernel_shap(model, x, target, segments, samples=2 ** m, baseline=baseline, seed=0),
                               exact)


class CaptumWithOurDraws(KernelShap):
    """Captum's KernelShap fed given coalitions (the first two: all kept, none kept) and weights."""

    def __init__(self, model, coalitions, weights):
        super().__init__(model)
        self.coalitions = coalitions
        self.weights = {tuple(z.tolist()): w for z, w in zip(coalitions[2:], weights.tolist())}

    def kernel_shap_perturb_generator(self, original_inp, **kwargs):
        for z in self.coalitions:
            yield z[None].long()

    def kernel_shap_similarity_kernel(self, _, __, interpretable_sample, **kwargs):
        key = tuple(interpretable_sample[0].bool().tolist())
        return torch.tensor([self.weights.get(key, self.inf_weight)])


@pytest.mark.parametrize("arch, samples", [("mlp", 40), ("sigmoid_mlp", 20), ("resnet_style", 30),
                                           ("course_cnn", 200), ("functional_cnn", 50)])
def test_kernel_shap_equals_captum_given_the_same_coalitions_and_weights(arch, samples, monkeypatch):
    """Captum weighs the two end points 10^6 instead of constraining: agreement to about 1e-4."""
    model, x, target = make(arch, n=1)
    segments = (torch.arange(x.shape[1]) % 7 if x.ndim == 2 else
                superpixels(x, "grid", cells=(2, 3) if x.shape[-1] < 64 else (3, 3)))
    m = int(segments.max()) + 1
    draws = {}
    import xai_course.attribution.shapley as shapley

    original = shapley.sample_coalitions

    def recording(*args):
        draws["z"], draws["w"] = original(*args)
        return draws["z"], draws["w"]

    monkeypatch.setattr(shapley, "sample_coalitions", recording)
    ours = kernel_shap(model, x, target, segments, samples=samples, seed=3)
    ends = torch.stack([torch.ones(m, dtype=torch.bool), torch.zeros(m, dtype=torch.bool)])
    captum = CaptumWithOurDraws(model, torch.cat([ends, draws["z"]]), draws["w"])
    mask = segments if x.ndim == 2 else segments[:, None]
    theirs = captum.attribute(x, target=target, baselines=0.0, feature_mask=mask[:1] if x.ndim == 4 else mask[None],
                              n_samples=samples)
    scale = theirs.abs().max().item()
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=1e-4, atol=1e-4 * scale)


class Additive(nn.Module):
    """f_c(x) = Σ_m g_m(segment m of x) with g_m = tanh of a weighted sum: φ_m = g_m(x) - g_m(x')."""

    def __init__(self, segments, classes=2):
        super().__init__()
        self.segments = segments.flatten()
        self.w = nn.Parameter(torch.randn(classes, self.segments.numel(), generator=torch.Generator().manual_seed(0)))

    def parts(self, x):
        h = x.flatten(1)[:, None] * self.w                                  # (N, classes, D)
        sums = torch.zeros(*h.shape[:2], int(self.segments.max()) + 1).index_add_(2, self.segments, h)
        return torch.tanh(sums)                                             # (N, classes, M)

    def forward(self, x):
        return self.parts(x).sum(2)


@pytest.mark.parametrize("samples", [30, 100, 1000])
def test_additive_model_known_answer(samples):
    segments = superpixels(torch.rand(1, 3, 8, 8), "grid", cells=(2, 4))[0]
    model = Additive(segments.expand(3, 8, 8)).eval()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = (model.parts(x) - model.parts(torch.full_like(x, 0.2)))[:, 1].double()   # (N, M)
    for values in (shapley_values(model, x, 1, segments, baseline=0.2),
                   kernel_shap(model, x, 1, segments, samples=samples, baseline=0.2, seed=0)):
        torch.testing.assert_close(per_segment(values, segments.expand(2, 8, 8)), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("samples", [2, 3, 10, 57, 300])
def test_efficiency_holds_for_every_budget(samples):
    model, x, target = make("course_cnn", n=2)
    segments = superpixels(x)
    with torch.no_grad():
        fill = make_fill(x, "mean", segments)
        delta = (model(x) - model(fill)).gather(1, target[:, None])[:, 0].double()
    values = per_segment(kernel_shap(model, x, target, segments, samples=samples, baseline="mean", seed=1), segments)
    torch.testing.assert_close(values.sum(1), delta, rtol=1e-5, atol=1e-5)


class Symmetric(nn.Module):
    """f(x) = (x0 + x1) x2 + 0·x3: segments {0} and {1} are symmetric when x0 = x1, {3} is a dummy."""

    def forward(self, x):
        return torch.stack([(x[:, 0] + x[:, 1]) * x[:, 2] + 0 * x[:, 3], x[:, 0]], 1)


def test_symmetry_and_dummy():
    x = torch.tensor([[0.7, 0.7, 2.0, 5.0]])
    exact = shapley_values(Symmetric().eval(), x, 0)
    assert exact[0, 0] == pytest.approx(exact[0, 1].item(), abs=1e-12) and exact[0, 3] == 0
    assert exact.sum().item() == pytest.approx(2.8, rel=1e-6)
    # Kernel SHAP has the properties once every size is in the regression with its full kernel mass
    # (14 interior coalitions); from fewer draws only efficiency is guaranteed
    approx = kernel_shap(Symmetric().eval(), x, 0, samples=16, seed=0)
    assert approx[0, 0].item() == pytest.approx(approx[0, 1].item(), abs=1e-6)
    assert abs(approx[0, 3].item()) < 1e-6


def test_determinism_under_a_seed_and_global_generator_untouched():
    model, x, target = make("course_resnet", n=1)
    a = kernel_shap(model, x, target, samples=60, seed=4)
    state = torch.get_rng_state()
    assert torch.equal(a, kernel_shap(model, x, target, samples=60, seed=4))
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(a, kernel_shap(model, x, target, samples=60, seed=5))


def test_sampling_design():
    for m, budget in [(12, 98), (12, 998), (7, 50), (20, 1000), (2, 2)]:
        counts = allocate(m, budget)
        assert sum(counts) <= budget and sum(counts) >= budget - 1
        assert all(c <= math.comb(m, s) for s, c in enumerate(counts, 1))
        assert counts == counts[::-1]                              # complementary sizes alike
    assert allocate(12, 998)[:2] == [12, 66]                        # the small sizes are enumerated
    z, w = sample_coalitions(12, 298, torch.Generator().manual_seed(0), "cpu")
    codes = {tuple(r.tolist()) for r in z}
    assert len(codes) == len(z)                                    # without replacement
    assert all(tuple((~r).tolist()) in codes for r in z)           # closed under complement
    sizes = z.sum(1)
    for s in range(1, 12):                                         # each size carries its kernel mass
        assert w[sizes == s].sum().item() == pytest.approx(11 / (s * (12 - s)))
    z, _ = sample_coalitions(22, 500, torch.Generator().manual_seed(0), "cpu")   # the rejection branch
    assert len({tuple(r.tolist()) for r in z}) == len(z)
    assert torch.equal(all_coalitions(3)[5], torch.tensor([True, False, True]))


def test_model_calls_and_batch_size():
    model, x, target = make("resnet_style", n=2)
    segments = superpixels(x, "grid", cells=3)
    for samples, calls in [(100, 100), (600, 512)]:
        with count_passes(model) as counter:
            kernel_shap(model, x, target, segments, samples=samples, seed=0, batch_size=16)
        assert max(counter) <= 16 and sum(counter) == 2 * calls
    with count_passes(model) as counter:
        shapley_values(model, x, target, segments, batch_size=64)
    assert max(counter) <= 64 and sum(counter) == 2 * 512


@pytest.mark.parametrize("arch", ["mlp", "course_resnet", "functional_cnn"])
def test_hygiene(arch):
    model, x, target = make(arch)
    segments = None if x.ndim == 2 else superpixels(x, "grid", cells=2)
    expected = kernel_shap(model, x, target, segments, samples=20, seed=0), shapley_values(model, x, target, segments)
    model.train()
    x.requires_grad_(True)
    before, x_before = snapshot(model), inputs_snapshot(x)
    with pytest.warns(UserWarning, match="train mode"), torch.no_grad():
        got = kernel_shap(model, x, target, segments, samples=20, seed=0), shapley_values(model, x, target, segments)
    assert_unchanged(before, snapshot(model))
    assert_inputs_unchanged(x_before, x)
    for g, e in zip(got, expected):
        assert not g.requires_grad and g.shape == x.shape
        torch.testing.assert_close(g, e)


def test_registry():
    assert METHODS["kernel_shap"] is kernel_shap and METHODS["shapley_values"] is shapley_values


def test_too_many_segments_for_exact_values():
    model = nn.Linear(21, 2).eval()
    with pytest.raises(ValueError, match="at most 20"):
        shapley_values(model, torch.rand(1, 21), 0)
    kernel_shap(model, torch.rand(1, 21), 0, samples=50, seed=0)   # Kernel SHAP is fine


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(inputs=torch.ones(10)), ValueError, "inputs"),
    (dict(target=3), ValueError, "target"),
    (dict(segments=torch.zeros(9, dtype=torch.long)), ValueError, "segments"),
    (dict(segments=torch.zeros(10)), TypeError, "segments"),
    (dict(baseline="gray"), ValueError, "baseline"),
    (dict(baseline=torch.zeros(4)), ValueError, "baseline"),
    (dict(batch_size=-1), ValueError, "batch_size"),
    (dict(samples=1), ValueError, "samples"),
    (dict(samples=10.0), ValueError, "samples"),
    (dict(seed="a"), TypeError, "seed"),
])
@pytest.mark.parametrize("method", ["kernel_shap", "shapley_values"])
def test_bad_input(method, kwargs, error, words):
    if method == "shapley_values" and ("samples" in kwargs or "seed" in kwargs):
        return
    model, x, _ = make("mlp", n=5)
    args = dict(model=model, inputs=x, target=0) | kwargs
    with pytest.raises(error, match=words):
        METHODS[method](args.pop("model"), args.pop("inputs"), args.pop("target"), **args)
