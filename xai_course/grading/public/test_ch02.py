"""Grading tests of chapter 2 (notebooks/02_saturation.ipynb): fresh random inputs and models each run."""
import pytest
import torch
from torch import nn

from xai_course import models
from xai_course.grading.checks import assert_close, call, fresh_seed, random_cnn, random_mlp, reference_gradient


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


# --- Exercise 2.2: halfway_alpha(model, x, baseline, target, steps), graded by its defining property -----
def _covered(model, x, baseline, target, alpha):
    with torch.no_grad():
        f = model(torch.stack([baseline, baseline + alpha * (x - baseline), x]))[:, target].double()
    return float((f[1] - f[0]) / (f[2] - f[0]))


def _check_halfway(submission, model, x, baseline, target, steps, what):
    got = call(submission.halfway_alpha, model, x, baseline, target, steps)
    assert isinstance(got, (float, int)) and not isinstance(got, bool), (
        f"{what}: halfway_alpha must return a Python float, not {type(got).__name__}")
    k = round(got * (steps - 1))
    assert 0 <= k < steps and abs(got - k / (steps - 1)) < 1e-6, (
        f"{what}: {got} is not one of the points k / (steps - 1) of the path")
    assert _covered(model, x, baseline, target, k / (steps - 1)) >= 0.5 - 1e-6, (
        f"{what}: at alpha = {got} the score has not yet covered half of its change")
    if k > 0:
        assert _covered(model, x, baseline, target, (k - 1) / (steps - 1)) < 0.5 + 1e-6, (
            f"{what}: at alpha = {(k - 1) / (steps - 1)}, one point earlier, the score had already "
            "covered half of its change: return the smallest such alpha")
    return got


@pytest.mark.exercise("02.2", points=2, functions=["halfway_alpha"])
def test_halfway_alpha_on_the_toy_and_a_linear_model(submission):
    fresh_seed()
    toy = models.Saturating()
    got = _check_halfway(submission, toy, torch.ones(2), torch.zeros(2), 0, 100, "toy at (1, 1)")
    assert abs(got - 25 / 99) < 1e-6, (
        f"toy at (1, 1): y = min(1, 2 alpha) is half-way at 1/4, so the answer is 25/99 of k / 99, not {got}")
    linear = nn.Sequential(nn.Linear(5, 2)).eval()
    x, baseline = torch.randn(5), torch.randn(5)
    got = _check_halfway(submission, linear, x, baseline, 1, 20, "a linear model")
    assert abs(got - 10 / 19) < 1e-6, f"a linear model is half-way at 1/2, so the answer is 10/19 of k / 19, not {got}"


@pytest.mark.exercise("02.2", points=2, functions=["halfway_alpha"])
def test_halfway_alpha_on_random_networks(submission):
    fresh_seed()
    d = int(torch.randint(3, 9, ()))
    for model, shape in ((random_mlp(d, 16, 3), (d,)), (random_cnn(3, 3), (3, 8, 8))):
        for _ in range(3):
            x, baseline = torch.rand(shape), torch.rand(shape) * 0.2
            target = int(torch.randint(0, 3, ()))
            with torch.no_grad():
                f = model(torch.stack([baseline, x]))[:, target]
            if abs(float(f[1] - f[0])) < 1e-3:
                continue                      # no change to share: not tested
            _check_halfway(submission, model, x, baseline, target, int(torch.randint(5, 60, ())),
                           f"random network on inputs of shape {shape}")


# --- Exercise 2.3: completeness_gap(model, inputs, baseline, target) -> (N,) ----------------------------
def _reference_gap(model, inputs, baseline, target):
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1).expand(inputs.shape[0])
    with torch.no_grad():
        delta = (model(inputs) - model(baseline.expand_as(inputs))).gather(1, target[:, None])[:, 0]
    g = reference_gradient(model, inputs, target)
    return delta - ((inputs - baseline) * g).flatten(1).sum(1)


@pytest.mark.exercise("02.3", points=2, functions=["completeness_gap"])
def test_completeness_gap_with_a_shared_baseline_and_int_target(submission):
    fresh_seed()
    toy = models.Saturating()
    points = torch.cat([torch.rand(3, 2) * 0.4, 0.6 + torch.rand(3, 2)])  # below, then above the kink
    assert_close(call(submission.completeness_gap, toy, points, torch.zeros(2), 0),
                 torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]), "completeness_gap on the saturating toy")
    n, d = int(torch.randint(2, 7, ())), int(torch.randint(3, 9, ()))
    model, inputs, baseline = random_mlp(d, 12, 4), torch.randn(n, d), torch.randn(d)
    target = int(torch.randint(0, 4, ()))
    assert_close(call(submission.completeness_gap, model, inputs, baseline, target),
                 _reference_gap(model, inputs, baseline, target), "completeness_gap (MLP, shared baseline, int target)")


@pytest.mark.exercise("02.3", points=2, functions=["completeness_gap"])
def test_completeness_gap_with_per_example_baselines_and_targets(submission):
    fresh_seed()
    n = int(torch.randint(2, 6, ()))
    model, inputs, baseline = random_cnn(3, 4), torch.rand(n, 3, 8, 8), 0.3 * torch.rand(n, 3, 8, 8)
    target = torch.randint(0, 4, (n,))
    assert_close(call(submission.completeness_gap, model, inputs, baseline, target),
                 _reference_gap(model, inputs, baseline, target), "completeness_gap (CNN, per-example baselines)")
