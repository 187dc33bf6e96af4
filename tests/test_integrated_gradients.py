"""Chapter 4: integrated gradients (five quadratures, baselines, batch_size, delta) and GradientSHAP.

Known answers (a linear model, a separable sine with a closed-form path integral, the saturating toy of
the lecture), the quadrature rules themselves, completeness, Captum parity on every test architecture
plus two of our own, batch_size, baselines, hygiene and bad input.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from captum.attr import GradientShap, IntegratedGradients
from captum.attr._utils.approximation_methods import approximation_parameters
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import ALL_ARCHITECTURES as ALL, float32_atol, make, make_architecture
from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from xai_course.attribution import METHODS, count_passes, gradient_shap, integrated_gradients, make_baseline
from xai_course.attribution.integrated_gradients import RULES as QUADRATURES
from xai_course.attribution.integrated_gradients import expected_gradients, quadrature
from xai_course.models import Saturating




def logit(model, x, target):
    with torch.no_grad():
        return model(x).gather(1, torch.as_tensor(target).expand(len(x))[:, None])[:, 0]


# ---------------------------------------------------------------- the quadrature rules
@settings(max_examples=30, deadline=None)
@given(steps=st.integers(2, 40), method=st.sampled_from(QUADRATURES))
def test_quadrature_points_in_unit_interval_and_weights_sum_to_one(steps, method):
    alphas, weights = quadrature(method, steps)
    assert alphas.dtype == weights.dtype == torch.float64 and alphas.shape == weights.shape == (steps,)
    assert (alphas >= 0).all() and (alphas <= 1).all() and (alphas.diff() > 0).all()
    assert (weights > 0).all()
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-12)


def _moment_error(method, steps, degree):
    """Σ_k w_k α_k^d - ∫_0^1 α^d dα."""
    alphas, weights = quadrature(method, steps)
    return (weights * alphas**degree).sum().item() - 1 / (degree + 1)


@pytest.mark.parametrize("steps", [2, 3, 5, 8, 20])
def test_gauss_legendre_is_exact_for_polynomials_of_degree_2m_minus_1(steps):
    for degree in range(2 * steps):
        assert abs(_moment_error("gausslegendre", steps, degree)) < 1e-12, degree
    if steps <= 5:  # degree 2m is not integrated exactly (the error is too small to see for large m)
        assert abs(_moment_error("gausslegendre", steps, 2 * steps)) > 1e-8


@pytest.mark.parametrize("method, exact_up_to", [("riemann_left", 0), ("riemann_right", 0),
                                                 ("riemann_middle", 1), ("riemann_trapezoid", 1)])
def test_riemann_rules_degree_of_exactness(method, exact_up_to):
    for steps in (2, 5, 12):
        for degree in range(exact_up_to + 1):
            assert abs(_moment_error(method, steps, degree)) < 1e-12
        assert abs(_moment_error(method, steps, exact_up_to + 1)) > 1e-4


def test_quadrature_points_by_hand():
    torch.testing.assert_close(quadrature("riemann_left", 4)[0], torch.tensor([0, .25, .5, .75], dtype=torch.float64))
    torch.testing.assert_close(quadrature("riemann_right", 4)[0], torch.tensor([.25, .5, .75, 1], dtype=torch.float64))
    torch.testing.assert_close(quadrature("riemann_middle", 4)[0],
                               torch.tensor([.125, .375, .625, .875], dtype=torch.float64))
    alphas, weights = quadrature("riemann_trapezoid", 5)
    torch.testing.assert_close(alphas, torch.tensor([0, .25, .5, .75, 1], dtype=torch.float64))
    torch.testing.assert_close(weights, torch.tensor([1 / 8, 1 / 4, 1 / 4, 1 / 4, 1 / 8], dtype=torch.float64))
    alphas, weights = quadrature("gausslegendre", 2)  # nodes 1/2 ± 1/(2√3), weights 1/2
    torch.testing.assert_close(alphas, torch.tensor([.5 - .5 / math.sqrt(3), .5 + .5 / math.sqrt(3)],
                                                    dtype=torch.float64))
    torch.testing.assert_close(weights, torch.tensor([.5, .5], dtype=torch.float64))


@pytest.mark.parametrize("method", QUADRATURES)
@pytest.mark.parametrize("steps", [2, 7, 50])
def test_quadrature_matches_captum(method, steps):
    step_sizes, captum_alphas = approximation_parameters(method)
    alphas, weights = quadrature(method, steps)
    torch.testing.assert_close(alphas, torch.tensor(captum_alphas(steps), dtype=torch.float64), atol=1e-7, rtol=0)
    scale = (steps - 1) / steps if method == "riemann_trapezoid" else 1.0  # Captum's trapezoid sums to 1 - 1/m
    torch.testing.assert_close(weights * scale, torch.tensor(step_sizes(steps), dtype=torch.float64))


@pytest.mark.parametrize("method, steps, words", [("simpson", 4, "method"), ("gausslegendre", 1, "steps"),
                                                  ("riemann_left", 3.0, "steps"), ("riemann_middle", None, "steps")])
def test_quadrature_bad_input(method, steps, words):
    with pytest.raises(ValueError, match=words):
        quadrature(method, steps)


# ---------------------------------------------------------------- known answers
floats = st.floats(-3, 3, allow_nan=False, width=32, allow_subnormal=False)


@settings(max_examples=25, deadline=None)
@given(w=st.lists(floats, min_size=4, max_size=4), x=st.lists(floats, min_size=4, max_size=4),
       ref=st.lists(floats, min_size=4, max_size=4), method=st.sampled_from(QUADRATURES),
       steps=st.integers(2, 9))
def test_linear_model_ig_is_weight_times_difference_for_every_rule(w, x, ref, method, steps):
    model = nn.Linear(4, 2).eval()
    with torch.no_grad():
        model.weight[1] = torch.tensor(w)
    x, ref = torch.tensor([x]), torch.tensor([ref])
    a, delta = integrated_gradients(model, x, 1, baseline=ref, steps=steps, method=method, return_delta=True)
    torch.testing.assert_close(a, torch.tensor([w]) * (x - ref), rtol=1e-5, atol=1e-5)
    assert delta.abs().item() < 1e-4


class Sine(nn.Module):
    """F(x) = Σ_i sin(x_i): IG_i = (x_i - x'_i) ∫ cos(x'_i + α (x_i - x'_i)) dα = sin x_i - sin x'_i."""

    def __init__(self):
        super().__init__()
        self.eval()

    def forward(self, x):
        return torch.sin(x).sum(1, keepdim=True)


def test_sine_closed_form_path_integral():
    x = torch.tensor([[0.3, -1.2, 2.5, 3.0]], dtype=torch.float64)
    ref = torch.tensor([[0.0, 0.7, -2.0, 1.0]], dtype=torch.float64)
    exact = torch.sin(x) - torch.sin(ref)
    torch.testing.assert_close(integrated_gradients(Sine(), x, 0, baseline=ref, steps=16), exact, atol=1e-12, rtol=0)
    # the error of each rule shrinks at its order: 1/m for left/right, 1/m² for middle/trapezoid
    for method, ratio in [("riemann_left", 2), ("riemann_right", 2), ("riemann_middle", 4),
                          ("riemann_trapezoid", 4)]:
        errors = [(integrated_gradients(Sine(), x, 0, baseline=ref, steps=m, method=method) - exact).abs().max()
                  for m in (32, 64, 128)]
        assert errors[0] / errors[1] == pytest.approx(ratio, rel=0.1), method
        assert errors[1] / errors[2] == pytest.approx(ratio, rel=0.1), method


@pytest.mark.parametrize("method", QUADRATURES)
def test_saturating_toy_in_its_linear_region_is_exact(method):
    i = torch.tensor([[0.2, 0.3], [0.5, 0.4], [-1.0, 0.4]])  # i1 + i2 < 1 on the whole path from 0
    torch.testing.assert_close(integrated_gradients(Saturating(), i, 0, steps=6, method=method), i)


@settings(max_examples=40, deadline=None)
@given(i1=st.floats(0.0625, 3, width=32, allow_subnormal=False),
       i2=st.floats(0.0625, 3, width=32, allow_subnormal=False), method=st.sampled_from(QUADRATURES),
       steps=st.integers(2, 30))
def test_saturating_toy_known_answer_within_one_weight(i1, i2, method, steps):
    """y = min(1, i1 + i2): along α·i the gradient is (1, 1) until α = 1/(i1 + i2), then 0, so
    IG = i · min(1, 1/(i1 + i2)). A rule misplaces at most one node's weight of the step function."""
    i = torch.tensor([[i1, i2]])
    exact = i * min(1.0, 1.0 / (i1 + i2))
    got = integrated_gradients(Saturating(), i, 0, steps=steps, method=method)
    bound = quadrature(method, steps)[1].max().item() * i.abs() + 1e-5
    assert ((got - exact).abs() <= bound).all()


def test_saturating_toy_lecture_point():
    """At (1, 1) the gradient is zero but IG splits y(x) - y(0) = 1 equally: (1/2, 1/2)."""
    a, delta = integrated_gradients(Saturating(), torch.tensor([[1.0, 1.0]]), 0, steps=50, return_delta=True)
    torch.testing.assert_close(a, torch.tensor([[0.5, 0.5]]))
    assert abs(delta.item()) < 1e-6


# ---------------------------------------------------------------- completeness
@pytest.mark.parametrize("arch", ALL)
def test_completeness_delta_shrinks_with_steps(arch):
    """On a ReLU net the integrand is piecewise constant along the path, so the error falls like 1/m but
    not monotonically (kinks). From 4 to 64 Gauss-Legendre points it at least halves (unless already
    under 0.2% of |F(x) - F(0)|) and ends under 10% of it; measured 0.1-3% on these nets."""
    model, x, target = make(arch, n=1)
    scale = (logit(model, x, target) - logit(model, torch.zeros_like(x), target)).abs().max()
    coarse = integrated_gradients(model, x, target, steps=4, return_delta=True)[1].abs().max()
    fine = integrated_gradients(model, x, target, steps=64, return_delta=True)[1].abs().max()
    assert fine <= coarse / 2 + 2e-3 * scale + 1e-6
    assert fine <= 0.1 * scale + 1e-6


# ---------------------------------------------------------------- reference parity (Captum)
@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("method", QUADRATURES)
def test_matches_captum_for_every_rule(arch, method):
    model, x, target = make(arch)
    ref = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) * 0.3  # one baseline per example
    ours, delta = integrated_gradients(model, x, target, baseline=ref, steps=5, method=method, return_delta=True)
    theirs, their_delta = IntegratedGradients(model).attribute(x, baselines=ref, target=target, n_steps=5,
                                                               method=method, return_convergence_delta=True)
    # return_delta is the completeness error Σ IG - (F(x) - F(x'))
    expected = ours.flatten(1).sum(1) - (logit(model, x, target) - logit(model, ref, target))
    torch.testing.assert_close(delta, expected, rtol=1e-4, atol=1e-5)
    if method == "riemann_trapezoid":
        ours = ours * 4 / 5  # Captum's trapezoid weights sum to 1 - 1/m; ours is the true trapezoid rule
    else:
        torch.testing.assert_close(delta, their_delta, rtol=1e-4, atol=1e-5)
    # Captum's Riemann points are float32 linspace, ours float64: a rare last-bit difference can flip a ReLU
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4 * theirs.abs().max().item())


@pytest.mark.parametrize("arch", ["mlp", "resnet_style"])
def test_default_baseline_and_steps_match_captum_defaults(arch):
    model, x, target = make(arch)
    torch.testing.assert_close(integrated_gradients(model, x, target),
                               IntegratedGradients(model).attribute(x, target=target), rtol=1e-4,
                               atol=float32_atol(x, integrated_gradients(model, x, target)))


def test_double_precision():
    model, x, target = make("resnet_style")
    model, x = model.double(), x.double()
    ours = integrated_gradients(model, x, target, steps=5)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, IntegratedGradients(model).attribute(x, target=target, n_steps=5))


# ---------------------------------------------------------------- batch_size


@pytest.mark.parametrize("arch", ["mlp", "resnet_style", "functional_cnn"])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 7, 64])
def test_batch_size_gives_the_same_result_and_bounds_each_pass(arch, batch_size):
    model, x, target = make(arch, n=3)  # batch sizes below, at and above N = 3, dividing 15 points or not
    steps = 5
    with count_passes(model) as all_at_once:
        expected = integrated_gradients(model, x, target, steps=steps, method="riemann_middle")
    assert all_at_once == [steps * len(x)]  # the floor: every path point in one pass
    with count_passes(model) as chunked:
        got = integrated_gradients(model, x, target, steps=steps, method="riemann_middle", batch_size=batch_size)
    assert max(chunked) <= batch_size and sum(chunked) == steps * len(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=float32_atol(expected))


# ---------------------------------------------------------------- baselines
def test_baseline_names_build_what_they_say():
    x = torch.rand(3, 2, 8, 8) * torch.tensor([1.0, 2.0, 5.0]).view(3, 1, 1, 1) - 0.5
    low, high = x.flatten(1).min(1).values.view(3, 1, 1, 1), x.flatten(1).max(1).values.view(3, 1, 1, 1)
    assert torch.equal(make_baseline(x, None), torch.zeros_like(x))
    assert torch.equal(make_baseline(x, "zeros"), torch.zeros_like(x))
    assert torch.equal(make_baseline(x, "black"), torch.zeros_like(x))  # black is 0.0 in the whole course
    assert torch.equal(make_baseline(x, "min"), low.expand_as(x))
    assert torch.equal(make_baseline(x, "white"), high.expand_as(x))
    torch.testing.assert_close(make_baseline(x, "grey"), ((low + high) / 2).expand_as(x))
    uniform = make_baseline(x, "uniform")
    assert (uniform >= low).all() and (uniform <= high).all() and torch.equal(uniform, make_baseline(x, "uniform"))
    blurred = make_baseline(x, "blurred")
    assert blurred.shape == x.shape and blurred.flatten(2).std(2).lt(x.flatten(2).std(2)).all()
    flat = torch.full((1, 3, 8, 8), 0.7)  # blurring a constant image changes nothing
    torch.testing.assert_close(make_baseline(flat, "blurred"), flat)


@pytest.mark.parametrize("name", ["zeros", "black", "min", "grey", "white", "blurred", "uniform", 0.25])
def test_every_baseline_name_equals_its_tensor_and_captum(name):
    model, x, target = make_architecture("resnet_style")
    ref = make_baseline(x, name)
    ours, delta = integrated_gradients(model, x, target, baseline=name, steps=6, return_delta=True)
    torch.testing.assert_close(ours, integrated_gradients(model, x, target, baseline=ref, steps=6))
    theirs = IntegratedGradients(model).attribute(x, baselines=ref, target=target, n_steps=6)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4 * theirs.abs().max().item())
    expected = ours.flatten(1).sum(1) - (logit(model, x, target) - logit(model, ref, target))
    torch.testing.assert_close(delta, expected, rtol=1e-4, atol=1e-4)


def test_baseline_tensor_shared_or_per_example():
    model, x, target = make("resnet_style")
    one = torch.rand(x.shape[1:])
    shared = integrated_gradients(model, x, target, baseline=one, steps=4)
    torch.testing.assert_close(integrated_gradients(model, x, target, baseline=one[None], steps=4), shared)
    torch.testing.assert_close(integrated_gradients(model, x, target, baseline=one.expand_as(x).clone(), steps=4),
                               shared)
    per_example = torch.rand_like(x)
    got = integrated_gradients(model, x, target, baseline=per_example, steps=4)
    for n in range(len(x)):  # each example is explained against its own baseline
        alone = integrated_gradients(model, x[n:n + 1], target[n:n + 1], baseline=per_example[n], steps=4)
        torch.testing.assert_close(got[n:n + 1], alone, rtol=1e-5, atol=float32_atol(got))


def test_baseline_equal_to_input_gives_zero():
    model, x, target = make("course_resnet")
    a, delta = integrated_gradients(model, x, target, baseline=x.clone(), steps=3, return_delta=True)
    assert torch.equal(a, torch.zeros_like(x)) and delta.abs().max() < 1e-5


# ---------------------------------------------------------------- hygiene
@pytest.mark.parametrize("arch", ALL)
def test_model_and_inputs_left_as_they_were(arch):
    model, x, target = make(arch)
    before, x_before = snapshot(model), inputs_snapshot(x)
    integrated_gradients(model, x, target, steps=3, return_delta=True, batch_size=5)
    gradient_shap(model, x, target, torch.rand(2, *x.shape[1:]), samples=2, noise=0.1, seed=0)
    assert_unchanged(before, snapshot(model))
    assert_inputs_unchanged(x_before, x)


@pytest.mark.parametrize("method", ["integrated_gradients", "gradient_shap"])
def test_train_mode_model_is_explained_in_eval_mode_and_restored(method):
    model, x, target = make("course_resnet")
    options = dict(steps=3) if method == "integrated_gradients" else dict(baselines=torch.zeros(1, *x.shape[1:]),
                                                                          samples=2, seed=1)
    expected = METHODS[method](model, x, target, **options)
    model.train()
    model.classifier_dropout = nn.Dropout(0.5)
    before = snapshot(model)
    with pytest.warns(UserWarning, match="train mode"):
        got = METHODS[method](model, x, target, **options)
    assert_unchanged(before, snapshot(model))
    assert model.training and model.classifier_dropout.training
    torch.testing.assert_close(got, expected)


def test_works_under_no_grad_and_returns_no_graph():
    model, x, target = make_architecture("resnet_style")
    refs = torch.rand(3, *x.shape[1:])
    expected = (integrated_gradients(model, x, target, steps=4, return_delta=True),
                gradient_shap(model, x, target, refs, seed=0))
    x.requires_grad_(True)  # inputs that require grad are left alone too
    before = inputs_snapshot(x)
    with torch.no_grad():
        got = (integrated_gradients(model, x, target, steps=4, return_delta=True),
               gradient_shap(model, x, target, refs, seed=0))
    assert_inputs_unchanged(before, x)
    for e, g in zip([*expected[0], expected[1]], [*got[0], got[1]]):
        torch.testing.assert_close(g, e)
        assert not g.requires_grad and g.grad_fn is None


def test_model_restored_after_an_error_inside():
    model, x, _ = make_architecture("resnet_style")
    model.train()
    before = snapshot(model)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="target"):
        integrated_gradients(model, x, 99, steps=3)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="target"):
        gradient_shap(model, x, 99, torch.zeros(1, *x.shape[1:]))
    assert_unchanged(before, snapshot(model))


def test_registry():
    assert METHODS["integrated_gradients"] is integrated_gradients and METHODS["gradient_shap"] is gradient_shap


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(model="not a model"), TypeError, "model"),
    (dict(inputs=[[1.0] * 10]), TypeError, "inputs"),
    (dict(inputs=torch.ones(10)), ValueError, "inputs"),
    (dict(inputs=torch.full((2, 10), float("inf"))), ValueError, "finite"),
    (dict(target=3), ValueError, "target"),
    (dict(target=[0, 1]), ValueError, "target"),
    (dict(target=0.5), TypeError, "target"),
    (dict(steps=1), ValueError, "steps"),
    (dict(steps=0), ValueError, "steps"),
    (dict(steps=2.5), ValueError, "steps"),
    (dict(steps=True), ValueError, "steps"),
    (dict(method="simpson"), ValueError, "method"),
    (dict(method="riemann"), ValueError, "method"),
    (dict(baseline=torch.zeros(2, 10)), ValueError, "baseline"),
    (dict(baseline=torch.zeros(5, 11)), ValueError, "baseline"),
    (dict(baseline=torch.zeros(7)), ValueError, "baseline"),
    (dict(baseline=torch.zeros(5, 10, dtype=torch.long)), TypeError, "baseline"),
    (dict(baseline=torch.full((10,), float("nan"))), ValueError, "baseline must be finite"),
    (dict(baseline="gray"), ValueError, "baseline"),
    (dict(baseline="blurred"), ValueError, "blurred"),  # needs images
    (dict(baseline=[0.0] * 10), TypeError, "baseline"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=2.0), ValueError, "batch_size"),
    (dict(batch_size=True), ValueError, "batch_size"),
])
def test_ig_bad_input_gives_a_clear_error(kwargs, error, words):
    model, x, _ = make_architecture("mlp")  # 3 classes, inputs (5, 10)
    args = dict(model=model, inputs=x, target=0) | kwargs
    with pytest.raises(error, match=words):
        integrated_gradients(args.pop("model"), args.pop("inputs"), args.pop("target"), **args)


def test_ig_wrong_baseline_shape_for_images():
    model, x, target = make_architecture("resnet_style")
    with pytest.raises(ValueError, match=r"baseline must have the shape of inputs \(4, 3, 16, 16\)"):
        integrated_gradients(model, x, target, baseline=torch.zeros(3, 16, 15))


# ================================================================ GradientSHAP
def captum_draws(x, baselines, samples, stdev, seed):
    """The draws Captum's GradientShap makes after np.random.seed(seed) and torch.manual_seed(seed), as
    expected_gradients takes them: (N, S, ...) noisy inputs and references, (N, S, 1, ...) alphas.

    Captum (captum/attr/_core/gradient_shap.py, noise_tunnel.py, _utils/common.py): NoiseTunnel first
    picks the baselines, np.random.choice(B, N·S), then adds torch.normal(0, stdev) noise to
    x.repeat_interleave(S) (example-major), and InputBaselineXGradient draws α = np.random.uniform(0, 1, N·S).
    """
    n, rest = x.shape[0], tuple(x.shape[1:])
    np.random.seed(seed)
    picks = np.random.choice(len(baselines), n * samples).tolist()
    alpha = np.random.uniform(0.0, 1.0, n * samples)
    torch.manual_seed(seed)
    noise = torch.normal(0, torch.tensor(stdev).repeat((n * samples,) + rest))
    noisy = (x.repeat_interleave(samples, 0) + noise).view(n, samples, *rest)
    return (noisy, baselines[picks].view(n, samples, *rest),
            torch.tensor(alpha, dtype=x.dtype).view(n, samples, *[1] * len(rest)))


@pytest.mark.parametrize("arch", ALL)
def test_gradient_shap_equals_captum_given_the_same_draws(arch):
    """In float64: Captum mixes α x + (1 - α) x', we x' + α (x - x'); in float32 the last-bit
    difference of the path point can flip a ReLU or a max-pool tie (seen on course_cnn)."""
    model, x, target = make(arch)
    model, x = model.double(), x.double()
    refs = torch.rand(3, *x.shape[1:], dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    stdev = 0.1 if arch != "mlp" else 0.0
    ours = expected_gradients(model, *captum_draws(x, refs, 2, stdev, seed=7), target)
    np.random.seed(7)
    torch.manual_seed(7)
    theirs = GradientShap(model).attribute(x, refs, n_samples=2, stdevs=stdev, target=target)
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)


def per_draw_values(model, x, refs, target, samples, seed):
    """(N, S, ...) single-draw GradientSHAP values (x̃ - x')·∇F(path point), for a standard error."""
    noisy, picked, alpha = captum_draws(x, refs, samples, 0.0, seed)
    n, rest = x.shape[0], x.shape[1:]
    flat = expected_gradients(model, noisy.reshape(-1, 1, *rest), picked.reshape(-1, 1, *rest),
                              alpha.reshape(-1, 1, *[1] * len(rest)), target.repeat_interleave(samples))
    return flat.view(n, samples, *rest)


@pytest.mark.parametrize("arch", ["mlp", "sigmoid_mlp", "functional_cnn"])
def test_gradient_shap_statistically_agrees_with_captum_and_expected_gradients(arch):
    """E[GradientSHAP] (no noise) = the mean over the baselines of IG from each baseline. With S draws
    both estimates lie within 5 standard errors (σ/√S of a single draw, measured) of it, element-wise."""
    model, x, target = make(arch)
    samples = 500
    refs = torch.rand(4, *x.shape[1:], generator=torch.Generator().manual_seed(3)) - 0.5
    expectation = torch.stack([integrated_gradients(model, x, target, baseline=r, steps=256) for r in refs]).mean(0)
    se = per_draw_values(model, x, refs, target, samples, seed=11).std(1) / math.sqrt(samples)
    ours = gradient_shap(model, x, target, refs, samples=samples, seed=5)
    np.random.seed(5)
    torch.manual_seed(5)
    theirs = GradientShap(model).attribute(x, refs, n_samples=samples, stdevs=0.0, target=target)
    floor = 1e-3 * expectation.abs().max()  # the IG reference's own quadrature error
    assert ((ours - expectation).abs() <= 5 * se + floor).all()
    assert ((theirs - expectation).abs() <= 5 * se + floor).all()
    assert not torch.allclose(ours, theirs)  # different draws: only the expectation is shared


def test_gradient_shap_with_noise_agrees_with_captum_in_distribution():
    """noise=s on inputs of range exactly 1 is Captum's stdevs=s: the two estimates differ by less
    than 5 standard errors of their difference (√2 σ/√S)."""
    model, x, target = make("mlp")
    flat = (x - x.min(1, keepdim=True).values) / (x.max(1, keepdim=True).values - x.min(1, keepdim=True).values)
    refs, samples = torch.rand(3, 10) * 0.5, 2000
    draws = expected_gradients(model, *captum_draws(flat.repeat_interleave(samples, 0), refs, 1, 0.2, 13),
                               target.repeat_interleave(samples)).view(len(x), samples, -1)
    se = draws.std(1) * math.sqrt(2 / samples)
    ours = gradient_shap(model, flat, target, refs, samples=samples, noise=0.2, seed=3)
    np.random.seed(3)
    torch.manual_seed(3)
    theirs = GradientShap(model).attribute(flat, refs, n_samples=samples, stdevs=0.2, target=target)
    assert ((ours - theirs).abs() <= 5 * se + 1e-6).all()


@pytest.mark.parametrize("arch", ["mlp", "sigmoid_mlp"])
def test_gradient_shap_with_one_baseline_approaches_ig(arch):
    """One baseline, no noise: GradientSHAP is Monte-Carlo IG (α uniform). With 4000 draws its error is
    within 5 standard errors, and under 3% of the largest IG attribution on these nets."""
    model, x, target = make(arch)
    ref = torch.rand(1, *x.shape[1:]) - 0.5
    ig = integrated_gradients(model, x, target, baseline=ref, steps=256)
    got = gradient_shap(model, x, target, ref, samples=4000, seed=0)
    se = per_draw_values(model, x, ref, target, 4000, seed=1).std(1) / math.sqrt(4000)
    assert ((got - ig).abs() <= 5 * se + 1e-3 * ig.abs().max()).all()
    assert (got - ig).abs().max() <= 0.03 * ig.abs().max()


def test_gradient_shap_on_a_linear_model_is_exact():
    """For a linear model every draw gives w ⊙ (x̃ - x'), so the mean is w ⊙ (x - mean of picked x')."""
    model = nn.Linear(4, 2).eval()
    x, ref = torch.randn(3, 4), torch.randn(1, 4)
    torch.testing.assert_close(gradient_shap(model, x, 1, ref, samples=7, seed=0),
                               model.weight[1].detach() * (x - ref), rtol=1e-5, atol=1e-6)


def test_gradient_shap_seed_determinism():
    model, x, target = make("resnet_style")
    refs = torch.rand(5, *x.shape[1:])
    a = gradient_shap(model, x, target, refs, samples=3, noise=0.1, seed=4)
    state = torch.get_rng_state()
    b = gradient_shap(model, x, target, refs, samples=3, noise=0.1, seed=4)
    assert torch.equal(torch.get_rng_state(), state)  # a seeded call leaves torch's global generator alone
    assert torch.equal(a, b)
    assert not torch.allclose(a, gradient_shap(model, x, target, refs, samples=3, noise=0.1, seed=5))
    torch.manual_seed(9)
    c = gradient_shap(model, x, target, refs, samples=3, noise=0.1)
    torch.manual_seed(9)
    assert torch.equal(c, gradient_shap(model, x, target, refs, samples=3, noise=0.1))


def test_gradient_shap_accepts_baselines_of_another_float_dtype():
    model, x, target = make("mlp")
    refs = torch.rand(3, 10)
    torch.testing.assert_close(gradient_shap(model, x, target, refs.double(), seed=0),
                               gradient_shap(model, x, target, refs, seed=0))


class Summed(nn.Module):
    def forward(self, x):
        return x.sum(1)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(model=Summed().eval()), ValueError, "logits"),
    (dict(inputs=torch.ones(5, 10, dtype=torch.int32)), TypeError, "inputs"),
    (dict(target=-1), ValueError, "target"),
    (dict(baselines=None), TypeError, "baselines"),
    (dict(baselines=[[0.0] * 10]), TypeError, "baselines"),
    (dict(baselines=torch.zeros(10)), ValueError, "baselines"),
    (dict(baselines=torch.zeros(2, 11)), ValueError, "baselines"),
    (dict(baselines=torch.zeros(0, 10)), ValueError, "baselines"),
    (dict(baselines=torch.zeros(2, 10, dtype=torch.long)), TypeError, "baselines"),
    (dict(baselines=torch.full((2, 10), float("nan"))), ValueError, "baselines"),
    (dict(samples=0), ValueError, "samples"),
    (dict(samples=2.0), ValueError, "samples"),
    (dict(noise=-0.1), ValueError, "noise"),
    (dict(noise="0.1"), ValueError, "noise"),
    (dict(noise=True), ValueError, "noise"),
    (dict(seed="zero"), TypeError, "seed"),
    (dict(seed=1.0), TypeError, "seed"),
])
def test_gradient_shap_bad_input_gives_a_clear_error(kwargs, error, words):
    model, x, _ = make_architecture("mlp")
    args = dict(model=model, inputs=x, target=0, baselines=torch.zeros(2, 10)) | kwargs
    with pytest.raises(error, match=words):
        gradient_shap(args.pop("model"), args.pop("inputs"), args.pop("target"), args.pop("baselines"), **args)
