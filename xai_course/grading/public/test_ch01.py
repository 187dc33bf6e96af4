"""Grading tests of chapter 1 (notebooks/01_vanilla_gradients.ipynb): fresh random inputs and models each run."""
import pytest
import torch

from xai_course.grading.checks import (assert_close, call, check_tensor, fresh_seed, random_cnn, random_mlp,
                                       reference_gradient)


# --- Exercise 1.1: circle_gradient(xy) -> (N, 2), the analytic gradient (2x, 2y) -----------------------
@pytest.mark.exercise("01.1", points=1, functions=["circle_gradient"])
def test_circle_gradient_on_random_points(submission):
    fresh_seed()
    xy = 10 * torch.rand(int(torch.randint(1, 40, ())), 2) - 5
    assert_close(call(submission.circle_gradient, xy), 2 * xy, "circle_gradient(xy)")


@pytest.mark.exercise("01.1", points=1, functions=["circle_gradient"])
def test_circle_gradient_on_one_point_and_a_large_batch(submission):
    fresh_seed()
    for xy in (torch.randn(1, 2) * 3, torch.randn(500, 2) * 100):
        assert_close(call(submission.circle_gradient, xy), 2 * xy, f"circle_gradient(xy) for {len(xy)} point(s)")


# --- Exercise 1.2: vanilla_gradient(model, inputs, target), signed, shape of inputs -------------------
def _check_vanilla(submission, model, x, target):
    expected = reference_gradient(model, x, target)
    assert_close(call(submission.vanilla_gradient, model, x, target), expected,
                 f"vanilla_gradient(model, inputs of shape {tuple(x.shape)}, target)")


@pytest.mark.exercise("01.2", points=3, functions=["vanilla_gradient"])
def test_vanilla_gradient_on_a_random_mlp(submission):
    fresh_seed()
    k, n, d = int(torch.randint(2, 7, ())), int(torch.randint(2, 9, ())), int(torch.randint(3, 10, ()))
    _check_vanilla(submission, random_mlp(d, 12, k, activation=torch.nn.Tanh), torch.randn(n, d),
                   torch.randint(0, k, (n,)))


@pytest.mark.exercise("01.2", points=3, functions=["vanilla_gradient"])
def test_vanilla_gradient_on_a_random_cnn(submission):
    fresh_seed()
    k, n = int(torch.randint(2, 6, ())), int(torch.randint(1, 5, ()))
    _check_vanilla(submission, random_cnn(3, k), torch.rand(n, 3, 8, 8), torch.randint(0, k, (n,)))


@pytest.mark.exercise("01.2", points=3, functions=["vanilla_gradient"])
def test_vanilla_gradient_explains_each_examples_own_target(submission):
    fresh_seed()
    model = random_mlp(5, 16, 4)
    x = torch.randn(6, 5)
    target = torch.tensor([0, 1, 2, 3, 2, 1])[torch.randperm(6)]
    _check_vanilla(submission, model, x, target)
    _check_vanilla(submission, model, x[:1], target[:1])


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
