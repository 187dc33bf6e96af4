"""Grading tests of chapter 5 (notebooks/05_smoothgrad.ipynb): fresh random inputs and models each run.

Exercise 5.1 has one exact answer; exercises 5.2 (antithetic SmoothGrad, an experiment) and 5.3 (a
ranking measure) are graded by properties that every correct answer has, not by equality with one
implementation: the noise of 5.2 comes from a ``torch.Generator`` handed in by the caller.
"""
import math

import pytest
import torch
from torch import nn

from xai_course import models
from xai_course.grading.checks import (assert_close, call, check_tensor, fresh_seed, random_cnn, random_mlp,
                                       reference_gradient)


# --- Exercise 5.1: relu_smoothgrad(x, sigma) -> (smoothgrad, smoothgrad_sq, vargrad) -------------------
def _phi(z):
    return 0.5 * (1 + torch.erf(z / math.sqrt(2)))


def _check_relu(submission, x, sigma):
    got = call(submission.relu_smoothgrad, x, sigma)
    assert isinstance(got, (tuple, list)) and len(got) == 3, (
        "relu_smoothgrad must return a tuple (smoothgrad, smoothgrad_sq, vargrad)")
    p = _phi(x.double() / sigma)
    for name, value, expected in zip(("smoothgrad", "smoothgrad_sq", "vargrad"), got, (p, p, p * (1 - p))):
        assert_close(value, expected, f"relu_smoothgrad(x, sigma={sigma:.3g}): {name}", atol=1e-5)


@pytest.mark.exercise("05.1", points=2, functions=["relu_smoothgrad"])
def test_relu_smoothgrad_at_points_known_by_hand(submission):
    fresh_seed()
    sigma = float(0.2 + torch.rand(()))
    _check_relu(submission, torch.tensor([0.0, 100.0, -100.0, sigma, -sigma]), sigma)


@pytest.mark.exercise("05.1", points=2, functions=["relu_smoothgrad"])
def test_relu_smoothgrad_on_a_random_tensor(submission):
    fresh_seed()
    _check_relu(submission, 3 * torch.randn(4, 5, 6), float(0.1 + 2 * torch.rand(())))


# --- Exercise 5.2: antithetic_smoothgrad(model, inputs, target, level, pairs, generator) -----------------
def _antithetic(submission, model, x, target, level, pairs, seed, what):
    got = call(submission.antithetic_smoothgrad, model, x, target, level, pairs, torch.Generator().manual_seed(seed))
    return check_tensor(got, x.shape, f"antithetic_smoothgrad(model, inputs of shape {tuple(x.shape)}, ...) {what}")


@pytest.mark.exercise("05.2", points=3, functions=["antithetic_smoothgrad"])
def test_antithetic_smoothgrad_is_exact_on_the_circle_and_affine_models(submission):
    seed = fresh_seed()
    points = 6 * torch.rand(5, 2) - 3
    got = _antithetic(submission, models.Circle(), points, torch.zeros(5, dtype=torch.long), 0.3, 3, seed,
                      "on the circle")
    assert_close(got, 2 * points, "antithetic SmoothGrad of the circle (the pairs cancel the noise exactly)")
    d, k = int(torch.randint(3, 8, ())), 3
    affine = random_mlp(d, 4, k, depth=0)
    x, target = torch.randn(4, d), torch.randint(0, k, (4,))
    got = _antithetic(submission, affine, x, target, 0.5, 2, seed, "on an affine model")
    assert_close(got, affine[0].weight.detach()[target], "antithetic SmoothGrad of an affine model (its weights)")


@pytest.mark.exercise("05.2", points=3, functions=["antithetic_smoothgrad"])
def test_antithetic_smoothgrad_without_noise_is_the_gradient(submission):
    seed = fresh_seed()
    model, x = random_cnn(3, 4), torch.rand(3, 3, 8, 8)
    target = torch.randint(0, 4, (3,))
    got = _antithetic(submission, model, x, target, 0.0, 2, seed, "with level=0")
    assert_close(got, reference_gradient(model, x, target), "antithetic SmoothGrad with level=0 (the gradient)")


@pytest.mark.exercise("05.2", points=3, functions=["antithetic_smoothgrad"])
def test_antithetic_smoothgrad_is_reproducible_and_agrees_with_smoothgrad_on_average(submission):
    seed = fresh_seed()
    d, k = int(torch.randint(3, 7, ())), 3
    model = random_mlp(d, 16, k, activation=nn.Tanh)
    x, target = torch.randn(2, d), torch.randint(0, k, (2,))
    first = _antithetic(submission, model, x, target, 0.2, 3, seed, "")
    again = _antithetic(submission, model, x, target, 0.2, 3, seed, "")
    assert torch.equal(first, again), "the same generator state must give the same result: draw only from `generator`"
    many = _antithetic(submission, model, x, target, 0.2, 2000, seed, "with 2000 pairs")
    sigma = 0.2 * (x.max(1).values - x.min(1).values)
    noise = torch.randn(2, 4000, d) * sigma.view(2, 1, 1)
    plain = reference_gradient(model, (x[:, None] + noise).flatten(0, 1), target.repeat_interleave(4000))
    plain = plain.view(2, 4000, d).mean(1)
    error = float((many - plain).norm() / plain.norm())
    assert error < 0.05, (f"with many pairs, antithetic SmoothGrad must agree with plain SmoothGrad; relative "
                          f"difference {error:.3f} (check sigma = level * (max - min) of each example)")


# --- Exercise 5.3: precision_at_object_size(maps, masks) -> (N,) ----------------------------------------
def _reference_precision(maps, masks):
    out = []
    for values, mask in zip(maps.flatten(1), masks.flatten(1)):
        out.append(mask[values.topk(int(mask.sum())).indices].double().mean())
    return torch.stack(out)


def _random_case(n, h, w):
    masks = torch.rand(n, h, w) < 0.3
    masks[:, 0, 0] = True
    maps = torch.rand(n, h, w) + 0.5 * masks      # distinct values: no ties
    return maps, masks


@pytest.mark.exercise("05.3", points=2, functions=["precision_at_object_size"])
def test_precision_at_object_size_by_hand_and_on_random_maps(submission):
    fresh_seed()
    maps = torch.tensor([[[0.9, 0.1], [0.5, 0.2]], [[0.3, 0.8], [0.1, 0.0]]])
    masks = torch.tensor([[[True, False], [False, True]], [[False, True], [False, False]]])
    assert_close(call(submission.precision_at_object_size, maps, masks), torch.tensor([0.5, 1.0]),
                 "precision_at_object_size on the example of the notebook")
    maps, masks = _random_case(int(torch.randint(2, 6, ())), 9, 7)
    assert_close(call(submission.precision_at_object_size, maps, masks), _reference_precision(maps, masks),
                 "precision_at_object_size on random maps")


@pytest.mark.exercise("05.3", points=2, functions=["precision_at_object_size"])
def test_precision_at_object_size_depends_only_on_rankings(submission):
    fresh_seed()
    maps, masks = _random_case(4, 8, 8)
    once = call(submission.precision_at_object_size, maps, masks)
    squared = call(submission.precision_at_object_size, 3 * maps ** 2, masks)
    assert_close(squared, once, "precision_at_object_size of squared and scaled maps (must not change)")
    perfect = call(submission.precision_at_object_size, masks.float() + 0.01 * torch.rand(4, 8, 8), masks)
    assert_close(perfect, torch.ones(4), "precision_at_object_size of a map equal to the mask")
