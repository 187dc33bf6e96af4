"""Grading tests of lab 15 (notebooks/15_roar.ipynb): fresh random inputs each run."""
import math

import pytest
import torch

from xai_course.evaluation import noisy_linear_imputation
from xai_course.grading.checks import assert_close, call, check_tensor, fresh_seed


# --- Exercise 15.1: t_interval(values, level) -> (mean, half_width) -----------------------------------------
def _reference_interval(values, level):
    from scipy.stats import t

    v = values.double()
    if v.numel() < 2:
        return v.mean().item(), 0.0
    return v.mean().item(), float(t.ppf(0.5 + level / 2, v.numel() - 1)) * v.std().item() / math.sqrt(v.numel())


def _check_interval(submission, values, level):
    got = call(submission.t_interval, values, level)
    assert isinstance(got, (tuple, list)) and len(got) == 2, "return the pair (mean, half_width)"
    mean, half = (float(g) for g in got)
    want_mean, want_half = _reference_interval(values, level)
    assert abs(mean - want_mean) <= 1e-6 * max(1.0, abs(want_mean)), f"mean of {values.tolist()}: got {mean}"
    assert abs(half - want_half) <= 1e-5 * max(1.0, want_half), (
        f"half width of {values.tolist()} at level {level}: expected {want_half:.6g}, got {half:.6g}")


@pytest.mark.exercise("15.1", points=2, functions=["t_interval"])
def test_t_interval_on_random_accuracies(submission):
    fresh_seed()
    for level in (0.95, float(0.5 + 0.49 * torch.rand(()))):
        s = int(torch.randint(2, 9, ()))
        _check_interval(submission, 0.2 + 0.8 * torch.rand(s), level)


@pytest.mark.exercise("15.1", points=2, functions=["t_interval"])
def test_t_interval_by_hand_and_edge_cases(submission):
    fresh_seed()
    _check_interval(submission, torch.tensor([0.5, 0.7]), 0.95)          # half width 1.2706 by hand
    _check_interval(submission, torch.tensor([float(torch.rand(()))]), 0.95)  # one value: width 0
    _check_interval(submission, torch.full((5,), 0.8), 0.9)              # no spread: width 0


# --- Exercise 15.2: jacobi_imputation(image, removed, iterations) -> (C, H, W) -----------------------------
def _random_holes(h, w, share):
    removed = torch.rand(h, w) < share
    removed[torch.randint(0, h, ()), torch.randint(0, w, ())] = False  # something is always kept
    return removed


@pytest.mark.exercise("15.2", points=3, functions=["jacobi_imputation"])
def test_jacobi_imputation_converges_to_the_linear_system(submission):
    fresh_seed()
    c, h, w = int(torch.randint(1, 4, ())), int(torch.randint(5, 10, ())), int(torch.randint(5, 10, ()))
    image = torch.rand(c, h, w, dtype=torch.float64)
    removed = _random_holes(h, w, 0.4)
    expected = noisy_linear_imputation(image[None], removed[None, None], noise=0.0)[0]
    got = call(submission.jacobi_imputation, image, removed, 3000)
    assert_close(got, expected, f"jacobi_imputation on a random ({c}, {h}, {w}) image, 3000 sweeps",
                 rtol=1e-5, atol=1e-6)


@pytest.mark.exercise("15.2", points=3, functions=["jacobi_imputation"])
def test_jacobi_imputation_keeps_kept_pixels_and_one_sweep_of_a_lone_pixel(submission):
    fresh_seed()
    h, w = int(torch.randint(5, 9, ())), int(torch.randint(5, 9, ()))
    image = torch.rand(2, h, w)
    removed = torch.zeros(h, w, dtype=torch.bool)
    i, j = int(torch.randint(1, h - 1, ())), int(torch.randint(1, w - 1, ()))
    removed[i, j] = True  # one interior pixel: one sweep gives the weighted mean of its 8 neighbours
    got = check_tensor(call(submission.jacobi_imputation, image, removed, 1), (2, h, w), "jacobi_imputation(...)")
    expected = image.clone()
    patch = image[:, i - 1:i + 2, j - 1:j + 2]
    weights = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])
    expected[:, i, j] = (patch * weights).sum((1, 2))
    assert_close(got, expected, "one sweep on one interior removed pixel (kept pixels unchanged)", atol=1e-6)


# --- Exercise 15.3: mask_leak(...) -> accuracy, graded by properties ------------------------------------------
def _block_masks(labels, size=32):
    masks = torch.zeros(len(labels), 1, size, size, dtype=torch.bool)
    rows = torch.randint(0, size - 8, (len(labels),))
    for n, (c, r) in enumerate(zip(labels.tolist(), rows.tolist())):
        masks[n, 0, r:r + 8, 6 * c:6 * c + 8] = True
    return masks


@pytest.mark.exercise("15.3", points=3, functions=["mask_leak"])
def test_mask_leak_finds_a_class_written_in_the_mask(submission):
    fresh_seed()
    ytr, yte = torch.randint(0, 4, (300,)), torch.arange(4).repeat(25)
    acc = call(submission.mask_leak, _block_masks(ytr), ytr, _block_masks(yte), yte, 4, 0, time_limit=60)
    assert isinstance(acc, float) and 0.0 <= acc <= 1.0, f"mask_leak must return a float in [0, 1], got {acc!r}"
    assert acc > 0.85, f"masks whose block position is the class: accuracy should be near 1, got {acc:.2f}"


@pytest.mark.exercise("15.3", points=3, functions=["mask_leak"])
def test_mask_leak_is_near_chance_on_masks_without_the_class_and_seeded(submission):
    fresh_seed()
    ytr, yte = torch.randint(0, 4, (300,)), torch.arange(4).repeat(25)
    train, test = torch.rand(300, 1, 32, 32) < 0.3, torch.rand(100, 1, 32, 32) < 0.3
    first = call(submission.mask_leak, train, ytr, test, yte, 4, 7, time_limit=60)
    second = call(submission.mask_leak, train, ytr, test, yte, 4, 7, time_limit=60)
    assert isinstance(first, float), f"mask_leak must return a float, got {type(first).__name__}"
    assert first < 0.45, f"masks drawn independently of the class: accuracy should be about 0.25, got {first:.2f}"
    assert first == second, f"the same seed must give the same accuracy: {first} and {second}"
