"""Grading tests of chapter 2 (notebooks/02_saturation.ipynb): fresh random inputs and models each run."""
import pytest
import torch
from torch import nn

from xai_course.grading.checks import (assert_close, call, fresh_seed, random_cnn, random_mlp, reference_gradient,
                                       saturating)


# --- Exercise 2.1: saturating_gradient(i) -> (N, 2), by hand -------------------------------------------
def _reference_saturating(i):
    return (i.sum(1, keepdim=True) < 1).to(i.dtype).expand(-1, 2)


def _away_from_kink(i):
    return i[(i.sum(1) - 1).abs() > 1e-3]


@pytest.mark.exercise("02.1", points=2, functions=["saturating_gradient"])
def test_saturating_gradient_on_random_points(submission):
    fresh_seed()
    i = _away_from_kink(torch.rand(int(torch.randint(20, 200, ())), 2) * 4 - 1.5)
    assert_close(call(submission.saturating_gradient, i), _reference_saturating(i), "saturating_gradient(i)")


@pytest.mark.exercise("02.1", points=2, functions=["saturating_gradient"])
def test_saturating_gradient_on_each_side_of_the_kink(submission):
    fresh_seed()
    below = torch.rand(7, 2) * 0.45           # i1 + i2 < 0.9: the ReLU is on, gradient (1, 1)
    above = 0.55 + torch.rand(5, 2) * 3       # i1 + i2 > 1.1: saturated, gradient (0, 0)
    negative = -torch.rand(3, 2) * 5          # negative inputs: the ReLU is on
    for name, i in (("below the kink", below), ("above the kink", above), ("negative inputs", negative)):
        assert_close(call(submission.saturating_gradient, i), _reference_saturating(i),
                     f"saturating_gradient(i) {name}")
    assert_close(call(submission.saturating_gradient, below[:1]), torch.ones(1, 2), "saturating_gradient on one point")


# --- Exercise 2.2: path_inputs(x, baseline, steps) -> (steps, *S) --------------------------------------
def _reference_path(x, baseline, steps):
    return torch.stack([baseline + (k / (steps - 1)) * (x - baseline) for k in range(steps)])


@pytest.mark.exercise("02.2", points=1, functions=["path_inputs"])
def test_path_inputs_on_vectors(submission):
    fresh_seed()
    d, steps = int(torch.randint(2, 12, ())), int(torch.randint(2, 30, ()))
    x, baseline = torch.randn(d), torch.randn(d)
    assert_close(call(submission.path_inputs, x, baseline, steps), _reference_path(x, baseline, steps),
                 f"path_inputs(x, baseline, steps={steps})")


@pytest.mark.exercise("02.2", points=1, functions=["path_inputs"])
def test_path_inputs_on_images(submission):
    fresh_seed()
    shape, steps = (int(torch.randint(1, 4, ())), 5, 6), int(torch.randint(2, 20, ()))
    x, baseline = torch.rand(shape), torch.zeros(shape)
    assert_close(call(submission.path_inputs, x, baseline, steps), _reference_path(x, baseline, steps),
                 f"path_inputs(image x, zero baseline, steps={steps})")
    assert_close(call(submission.path_inputs, x, baseline, 2), torch.stack([baseline, x]), "path_inputs(..., steps=2)")


# --- Exercise 2.3: riemann_attribution(model, x, baseline, target, steps) -> shape S --------------------
def _reference_riemann(model, x, baseline, target, steps):
    alphas = torch.arange(1, steps + 1, dtype=x.dtype) / steps
    points = baseline + alphas.view(-1, *[1] * x.ndim) * (x - baseline)
    return (x - baseline) * reference_gradient(model, points, target).mean(0)


def _check_riemann(submission, model, x, baseline, target, steps, what):
    expected = _reference_riemann(model, x, baseline, target, steps)
    assert_close(call(submission.riemann_attribution, model, x, baseline, target, steps), expected,
                 f"riemann_attribution ({what}, steps={steps})", rtol=1e-4, atol=1e-5 + 1e-4 * float(expected.abs().max()))


@pytest.mark.exercise("02.3", points=3, functions=["riemann_attribution"])
def test_riemann_attribution_on_a_random_mlp(submission):
    fresh_seed()
    d, k = int(torch.randint(3, 9, ())), 3
    model = random_mlp(d, 16, k, activation=nn.Tanh)
    _check_riemann(submission, model, torch.randn(d), torch.randn(d), int(torch.randint(0, k, ())),
                   int(torch.randint(2, 30, ())), "tanh MLP, random baseline")


@pytest.mark.exercise("02.3", points=3, functions=["riemann_attribution"])
def test_riemann_attribution_on_a_random_cnn(submission):
    fresh_seed()
    model = random_cnn(2, 4)
    _check_riemann(submission, model, torch.rand(2, 8, 8), 0.2 * torch.rand(2, 8, 8), int(torch.randint(0, 4, ())),
                   int(torch.randint(2, 20, ())), "CNN on an image")


@pytest.mark.exercise("02.3", points=3, functions=["riemann_attribution"])
def test_riemann_attribution_under_no_grad_and_with_one_step(submission):
    fresh_seed()
    model = random_mlp(5, 16, 3, activation=nn.Tanh)
    x, baseline, target = torch.randn(5), torch.zeros(5), int(torch.randint(0, 3, ()))
    with torch.no_grad():
        expected = _reference_riemann(model, x, baseline, target, 1)
        got = call(submission.riemann_attribution, model, x, baseline, target, 1)
    assert_close(got, expected, "riemann_attribution under torch.no_grad() with steps=1")


# --- Exercise 2.4: completeness_gap(model, inputs, baseline, target) -> (N,) ----------------------------
def _reference_gap(model, inputs, baseline, target):
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1).expand(inputs.shape[0])
    with torch.no_grad():
        delta = (model(inputs) - model(baseline.expand_as(inputs))).gather(1, target[:, None])[:, 0]
    g = reference_gradient(model, inputs, target)
    return delta - ((inputs - baseline) * g).flatten(1).sum(1)


@pytest.mark.exercise("02.4", points=2, functions=["completeness_gap"])
def test_completeness_gap_with_a_shared_baseline_and_int_target(submission):
    fresh_seed()
    toy = saturating()
    points = torch.cat([torch.rand(3, 2) * 0.4, 0.6 + torch.rand(3, 2)])  # below, then above the kink
    assert_close(call(submission.completeness_gap, toy, points, torch.zeros(2), 0),
                 torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]), "completeness_gap on the saturating toy")
    n, d = int(torch.randint(2, 7, ())), int(torch.randint(3, 9, ()))
    model, inputs, baseline = random_mlp(d, 12, 4), torch.randn(n, d), torch.randn(d)
    target = int(torch.randint(0, 4, ()))
    assert_close(call(submission.completeness_gap, model, inputs, baseline, target),
                 _reference_gap(model, inputs, baseline, target), "completeness_gap (MLP, shared baseline, int target)")


@pytest.mark.exercise("02.4", points=2, functions=["completeness_gap"])
def test_completeness_gap_with_per_example_baselines_and_targets(submission):
    fresh_seed()
    n = int(torch.randint(2, 6, ()))
    model, inputs, baseline = random_cnn(3, 4), torch.rand(n, 3, 8, 8), 0.3 * torch.rand(n, 3, 8, 8)
    target = torch.randint(0, 4, (n,))
    assert_close(call(submission.completeness_gap, model, inputs, baseline, target),
                 _reference_gap(model, inputs, baseline, target), "completeness_gap (CNN, per-example baselines)")
