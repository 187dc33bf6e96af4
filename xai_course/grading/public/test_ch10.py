"""Grading tests of chapter 10 (notebooks/10_activation_maximization.ipynb): fresh random models each run."""
import pytest
import torch
from torch import nn

from xai_course.grading.checks import assert_close, call, check_tensor, fresh_seed, random_cnn, random_mlp


def _reference_am_step(model, x, target, l2, lr):
    v = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        J = torch.log_softmax(model(v), 1).gather(1, target[:, None]).sum() - l2 * v.pow(2).sum()
        (g,) = torch.autograd.grad(J, v)
    return x + lr * g


# --- Exercise 10.1: am_step(model, x, target, l2, lr) -> shape of x --------------------------------
@pytest.mark.exercise("10.1", points=2, functions=["am_step"])
def test_am_step_on_a_random_mlp(submission):
    fresh_seed()
    model, x = random_mlp(6, 10, 4, activation=nn.Tanh), torch.randn(5, 6)
    target = torch.randint(0, 4, (5,))
    l2, lr = float(torch.rand(())), float(torch.rand(()) + 0.1)
    assert_close(call(submission.am_step, model, x, target, l2, lr), _reference_am_step(model, x, target, l2, lr),
                 "am_step(random MLP, ...)")


@pytest.mark.exercise("10.1", points=2, functions=["am_step"])
def test_am_step_on_a_random_cnn(submission):
    fresh_seed()
    model, x = random_cnn(1, 3), torch.rand(3, 1, 8, 8)
    target = torch.randint(0, 3, (3,))
    assert_close(call(submission.am_step, model, x, target, 0.0, 0.2), _reference_am_step(model, x, target, 0.0, 0.2),
                 "am_step(random CNN, l2=0)")


# --- Exercise 10.2: fit_gaussian(images, shrinkage) -> (mean (D,), cov (D, D)) ---------------------
def _reference_fit(images, s):
    x = images.reshape(len(images), -1).double()
    S = torch.cov(x.T)
    d = x.shape[1]
    return x.mean(0), (1 - s) * S + s * S.trace() / d * torch.eye(d, dtype=x.dtype)


@pytest.mark.exercise("10.2", points=2, functions=["fit_gaussian"])
@pytest.mark.parametrize("shrinkage", [0.0, 0.3, 1.0])
def test_fit_gaussian(submission, shrinkage):
    fresh_seed()
    images = torch.rand(int(torch.randint(20, 60, ())), 1, 4, 4)
    got = call(submission.fit_gaussian, images, shrinkage)
    assert isinstance(got, (tuple, list)) and len(got) == 2, "return a pair (mean, cov)"
    mean, cov = _reference_fit(images, shrinkage)
    assert_close(got[0], mean.float(), "the mean")
    assert_close(got[1], cov.float(), f"the covariance with shrinkage {shrinkage}")


# --- Exercise 10.3: sweep_summary(model, images, target) -> (norms, probs); confident_and_faint() ------
@pytest.mark.exercise("10.3", points=3, functions=["sweep_summary"])
def test_sweep_summary_on_a_random_cnn(submission):
    fresh_seed()
    model, images = random_cnn(1, 4), torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        probs = torch.softmax(model(images), 1)[:, 2]
    got = call(submission.sweep_summary, model, images, 2)
    assert isinstance(got, (tuple, list)) and len(got) == 2, "return a pair (norms, probs)"
    assert_close(got[0], images.flatten(1).norm(dim=1), "the norms")
    assert_close(got[1], probs, "the probabilities")


@pytest.mark.exercise("10.3", points=3, functions=["confident_and_faint"])
def test_confident_and_faint_is_the_measured_one(submission):
    from xai_course import models
    from xai_course.attribution import activation_maximization

    # the threshold 0.75 lies far from every measured probability (p ≈ 0.92 at λ = 0.1 and 0.60 at
    # λ = 1 with torch 2.14), so the answer does not flip with a torch version or a small change of AM
    model, grid = models.load("digits_cnn"), [0.001, 0.01, 0.1, 1.0]
    confident = []
    for l2 in grid:
        x = activation_maximization(model, 3, (1, 16, 16), l2=l2, steps=30, start="zeros")
        with torch.no_grad():
            if torch.softmax(model(x), 1)[0, 3] > 0.75:
                confident.append(l2)
    answer = call(submission.confident_and_faint)
    assert answer in grid, f"answer one of {grid}"
    assert answer == max(confident), "run your sweep (chapter 10, exercise 10.3) and read the probabilities"
