"""Grading tests of lab 15 (notebooks/15_roar.ipynb): fresh random inputs each run."""
import math

import pytest
import torch

from xai_course.evaluation import noisy_linear_imputation
from xai_course.grading.checks import assert_close, call, check_tensor, fresh_seed


# --- Exercise 15.1: seeds_needed(pilot, half_width, level) -> int, graded by its defining property -------------
def _half_width(sd, s, level):
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, s - 1)) * sd / math.sqrt(s)


def _check_seeds(submission, pilot, half_width, level):
    got = call(submission.seeds_needed, pilot, half_width, level)
    assert isinstance(got, int) and not isinstance(got, bool), (
        f"seeds_needed must return a Python int, got {type(got).__name__}")
    sd = pilot.double().std().item()
    slack = 1e-6 * half_width  # float32 against float64 arithmetic at the boundary
    what = f"seeds_needed({[round(v, 4) for v in pilot.tolist()]}, {half_width:.4g}, level={level:.3g})"
    assert got >= 2, f"{what}: an interval needs at least 2 seeds, got {got}"
    assert _half_width(sd, got, level) <= half_width + slack, (
        f"{what} = {got}: with {got} seeds the half width is {_half_width(sd, got, level):.5g} > {half_width:.5g}")
    assert got == 2 or _half_width(sd, got - 1, level) > half_width - slack, (
        f"{what} = {got}: {got - 1} seeds already give {_half_width(sd, got - 1, level):.5g} <= {half_width:.5g};"
        " return the smallest number")
    return got


@pytest.mark.exercise("15.1", points=2, functions=["seeds_needed"])
def test_seeds_needed_is_the_smallest_sufficient_number_on_random_pilots(submission):
    fresh_seed()
    for level in (0.95, float(0.5 + 0.49 * torch.rand(()))):
        for dtype in (torch.float32, torch.float64):
            p = int(torch.randint(2, 9, ()))
            pilot = (0.4 * torch.rand(p) - 0.2).to(dtype)  # paired differences in [-0.2, 0.2]
            half_width = float(0.02 + 0.1 * torch.rand(()))
            _check_seeds(submission, pilot, half_width, level)


@pytest.mark.exercise("15.1", points=2, functions=["seeds_needed"])
def test_seeds_needed_by_hand_and_monotone(submission):
    fresh_seed()
    pilot = torch.tensor([0.5, 0.7], dtype=torch.float64)  # sd 0.1414: 2 seeds give 1.27
    assert _check_seeds(submission, pilot, 2.0, 0.95) == 2, "two seeds give half width 1.27 <= 2"
    flat = torch.full((int(torch.randint(2, 6, ())),), float(torch.rand(())), dtype=torch.float64)
    assert _check_seeds(submission, flat, 0.01, 0.95) == 2, "pilot values without spread need 2 seeds"
    wide = _check_seeds(submission, pilot, 0.1, 0.95)
    assert _check_seeds(submission, pilot, 0.05, 0.95) > wide, "a narrower interval needs more seeds"
    assert _check_seeds(submission, pilot, 0.1, 0.99) > wide, "a higher level needs more seeds"


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
