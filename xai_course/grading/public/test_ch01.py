"""Grading tests of chapter 1 (notebooks/01_vanilla_gradients.ipynb): fresh random inputs and models each run."""
import pytest
import torch

from xai_course import models
from xai_course.grading.checks import (assert_close, call, check_tensor, fresh_seed, random_cnn, random_mlp,
                                       reference_gradient)


# --- Exercise 1.1: steepest_step(model, inputs, target, size), graded by properties ---------------------
def _score(model, x, target):
    with torch.no_grad():
        return model(x).gather(1, target.view(-1, 1))[:, 0]


def _check_steepest(submission, model, x, target, size, what):
    got = call(submission.steepest_step, model, x, target, size)
    check_tensor(got, x.shape, f"steepest_step(model, inputs of shape {tuple(x.shape)}, target, size)")
    length = (got - x).flatten(1).norm(dim=1)
    assert torch.allclose(length, torch.full_like(length, size), rtol=1e-3, atol=1e-6), (
        f"{what}: every step must have length {size}, yours have {length.tolist()}")
    return got


@pytest.mark.exercise("01.1", points=2, functions=["steepest_step"])
def test_steepest_step_on_the_circle_by_hand(submission):
    fresh_seed()
    radius = 1 + 4 * torch.rand(6)
    angle = 6.283 * torch.rand(6)
    xy = torch.stack([radius * angle.cos(), radius * angle.sin()], 1)
    size = float(0.1 + torch.rand(()))
    got = _check_steepest(submission, models.Circle(), xy, torch.zeros(6, dtype=torch.long), size, "circle")
    # the gradient (2x, 2y) points straight away from the centre
    assert_close(got, xy * (1 + size / radius)[:, None], "steepest_step on the circle", atol=1e-4)
    centre = call(submission.steepest_step, models.Circle(), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), 1.0)
    assert_close(centre, torch.zeros(1, 2), "steepest_step at the centre, where the gradient is zero")


@pytest.mark.exercise("01.1", points=2, functions=["steepest_step"])
def test_steepest_step_rises_more_than_any_random_step(submission):
    fresh_seed()
    k, n, d = 4, int(torch.randint(2, 6, ())), int(torch.randint(4, 10, ()))
    model, x = random_mlp(d, 16, k, activation=torch.nn.Tanh), torch.randn(n, d)
    target = torch.randint(0, k, (n,))
    size = 1e-2
    got = _check_steepest(submission, model, x, target, size, "random MLP")
    rise = _score(model, got, target) - _score(model, x, target)
    first_order = size * reference_gradient(model, x, target).flatten(1).norm(dim=1)
    assert torch.allclose(rise, first_order, rtol=0.05, atol=1e-6), (
        f"a small step along the gradient should raise the score by about size * |gradient| "
        f"= {first_order.tolist()}, yours raise it by {rise.tolist()}")
    for _ in range(20):
        direction = torch.randn(n, d)
        other = x + size * direction / direction.norm(dim=1, keepdim=True)
        better = _score(model, other, target) - _score(model, x, target) > rise + 1e-6
        assert not better.any(), "a random step of the same length raised the score more than yours"


@pytest.mark.exercise("01.1", points=2, functions=["steepest_step"])
def test_steepest_step_on_images(submission):
    fresh_seed()
    model, x = random_cnn(3, 4), torch.rand(3, 3, 8, 8)
    target = torch.randint(0, 4, (3,))
    got = _check_steepest(submission, model, x, target, 0.5, "random CNN")
    g = reference_gradient(model, x, target)
    cosine = ((got - x) * g).flatten(1).sum(1) / ((got - x).flatten(1).norm(dim=1) * g.flatten(1).norm(dim=1))
    assert (cosine > 1 - 1e-4).all(), f"the steps must point along the gradient (cosines {cosine.tolist()})"


# --- Exercise 1.2: channel_max_saliency(model, inputs, target) -> (N, 1, H, W) ----------------------------
def _check_channel_max(submission, model, x, target):
    expected = reference_gradient(model, x, target).abs().amax(1, keepdim=True)
    assert_close(call(submission.channel_max_saliency, model, x, target), expected,
                 f"channel_max_saliency(model, inputs of shape {tuple(x.shape)}, target)")


@pytest.mark.exercise("01.2", points=2, functions=["channel_max_saliency"])
def test_channel_max_saliency_on_a_random_cnn(submission):
    fresh_seed()
    k, n = int(torch.randint(2, 6, ())), int(torch.randint(1, 5, ()))
    _check_channel_max(submission, random_cnn(3, k), torch.rand(n, 3, 8, 8), torch.randint(0, k, (n,)))


@pytest.mark.exercise("01.2", points=2, functions=["channel_max_saliency"])
def test_channel_max_saliency_explains_each_examples_own_target(submission):
    fresh_seed()
    model = random_cnn(2, 4)
    x = torch.rand(4, 2, 6, 6)
    _check_channel_max(submission, model, x, torch.tensor([3, 0, 2, 1]))
    _check_channel_max(submission, model, x[:1], torch.tensor([2]))


# --- Exercise 1.3: pointing_game(attribution, mask) -> bool (N,) ----------------------------------------
def _reference_pointing(attribution, mask):
    top = attribution.abs().sum(1).flatten(1).argmax(1)
    return mask.flatten(1)[torch.arange(len(top)), top]


def _check_pointing(submission, attribution, mask):
    expected = _reference_pointing(attribution, mask)
    got = call(submission.pointing_game, attribution, mask)
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(expected.shape):
        check_tensor(got, expected.shape, "pointing_game(attribution, mask)")
    assert got.dtype == torch.bool, f"pointing_game must return a bool tensor, got dtype {got.dtype}"
    assert torch.equal(got, expected), f"pointing_game: expected {expected.tolist()}, got {got.tolist()}"


@pytest.mark.exercise("01.3", points=2, functions=["pointing_game"])
def test_pointing_game_one_channel(submission):
    fresh_seed()
    n, h, w = int(torch.randint(4, 12, ())), int(torch.randint(5, 12, ())), int(torch.randint(5, 12, ()))
    attribution = torch.randn(n, 1, h, w)
    mask = torch.rand(n, 1, h, w) < 0.4
    mask[0] = False  # an image where the object is missed for sure
    _check_pointing(submission, attribution, mask)


@pytest.mark.exercise("01.3", points=2, functions=["pointing_game"])
def test_pointing_game_sums_absolute_values_over_channels(submission):
    fresh_seed()
    n, c, h, w = 10, 3, 9, 7
    attribution = 0.2 * torch.rand(n, c, h, w) - 0.1
    mask = torch.rand(n, 1, h, w) < 0.5
    for i in range(n):  # a signed peak in every channel, and a decoy that is larger in one channel only
        p, d = torch.randperm(h * w)[:2]
        attribution[i, :, p // w, p % w] = 0.9 * torch.where(torch.rand(c) < 0.5, -1.0, 1.0)
        attribution[i, :, d // w, d % w] = 0.0
        attribution[i, int(torch.randint(0, c, ())), d // w, d % w] = 1.5
        mask[i, 0, p // w, p % w] = bool(torch.rand(()) < 0.5)
        mask[i, 0, d // w, d % w] = not mask[i, 0, p // w, p % w]
    _check_pointing(submission, attribution, mask)
