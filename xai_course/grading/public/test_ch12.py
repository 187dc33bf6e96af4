"""Grading tests of chapter 12 (notebooks/12_occlusion.ipynb): fresh random inputs and models each run."""
import math

import pytest
import torch
from torch import nn

from xai_course.grading.checks import assert_close, call, check_tensor, fresh_seed, random_cnn  # noqa: F401


# --- Exercise 12.1: coverage_counts(size, window, stride) -> LongTensor (size,) -------------------------
def _reference_coverage(size, window, stride):
    counts = torch.zeros(size, dtype=torch.long)
    for k in range(math.ceil((size - window) / stride) + 1):
        counts[k * stride:k * stride + window] += 1
    return counts


def _counts(result, size, what):
    if not isinstance(result, torch.Tensor) or tuple(result.shape) != (size,):
        raise AssertionError(f"{what} must return a tensor of shape ({size},), got "
                             f"{tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__}")
    if result.is_floating_point() and not torch.equal(result, result.round()):
        raise AssertionError(f"{what} must hold whole numbers (counts of windows)")
    return result.long()


@pytest.mark.exercise("12.1", points=2, functions=["coverage_counts"])
def test_coverage_counts_by_hand(submission):
    for args, expected in [((6, 2, 2), [1] * 6), ((5, 2, 1), [1, 2, 2, 2, 1]),
                           ((7, 3, 2), [1, 1, 2, 1, 2, 1, 1]), ((9, 9, 4), [1] * 9), ((3, 1, 1), [1, 1, 1])]:
        got = _counts(call(submission.coverage_counts, *args), args[0], f"coverage_counts{args}")
        assert got.tolist() == expected, f"coverage_counts{args} should be {expected}, got {got.tolist()}"


@pytest.mark.exercise("12.1", points=2, functions=["coverage_counts"])
def test_coverage_counts_random_sizes_with_cut_windows(submission):
    fresh_seed()
    for _ in range(5):
        size = int(torch.randint(5, 120, ()))
        window = int(torch.randint(1, size + 1, ()))
        stride = int(torch.randint(1, window + 1, ()))
        got = _counts(call(submission.coverage_counts, size, window, stride), size,
                      f"coverage_counts({size}, {window}, {stride})")
        assert got.tolist() == _reference_coverage(size, window, stride).tolist(), \
            f"coverage_counts({size}, {window}, {stride}) is wrong"


# --- Exercise 12.2: tile_occlusion(model, images, target, tile, baseline) -> (N, H, W) ------------------
def _reference_tiles(model, images, target, tile, baseline):
    n, _, h, w = images.shape
    out = torch.zeros(n, h, w)
    with torch.no_grad():
        full = model(images)[torch.arange(n), target]
        for r in range(0, h, tile):
            for q in range(0, w, tile):
                x = images.clone()
                x[:, :, r:r + tile, q:q + tile] = baseline
                out[:, r:r + tile, q:q + tile] = (full - model(x)[torch.arange(n), target])[:, None, None]
    return out


@pytest.mark.exercise("12.2", points=3, functions=["tile_occlusion"])
def test_tile_occlusion_on_a_random_cnn(submission):
    fresh_seed()
    k, n = int(torch.randint(2, 6, ())), int(torch.randint(1, 4, ()))
    model, x = random_cnn(3, k), torch.rand(n, 3, 8, 8)
    target = torch.randint(0, k, (n,))
    for tile, baseline in [(2, 0.0), (3, 0.5), (8, -1.0)]:   # 3: tiles cut at the edge
        got = check_tensor(call(submission.tile_occlusion, model, x, target, tile, baseline), (n, 8, 8),
                           f"tile_occlusion(..., tile={tile})")
        assert_close(got, _reference_tiles(model, x, target, tile, baseline),
                     f"tile_occlusion(..., tile={tile}, baseline={baseline})")


@pytest.mark.exercise("12.2", points=3, functions=["tile_occlusion"])
def test_tile_occlusion_on_a_linear_model_and_a_rectangle(submission):
    fresh_seed()
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 6 * 10, 3)).eval()
    x, target = torch.rand(2, 2, 6, 10), torch.tensor([2, 0])
    got = check_tensor(call(submission.tile_occlusion, model, x, target, 4, 0.25), (2, 6, 10), "tile_occlusion")
    assert_close(got, _reference_tiles(model, x, target, 4, 0.25), "tile_occlusion on a 6 x 10 image, tile 4")


# --- Exercise 12.3: region_interaction(model, image, target, region_a, region_b, baseline) -------------
def _reference_interaction(model, image, target, a, b, baseline):
    copies = []
    for region in (None, a, b, a | b):
        x = image.clone()
        if region is not None:
            x[:, region] = baseline
        copies.append(x)
    with torch.no_grad():
        f = model(torch.stack(copies))[:, target]
    drops = (f[0] - f[1:]).tolist()
    return drops + [drops[2] - drops[0] - drops[1]]


@pytest.mark.exercise("12.3", points=2, functions=["region_interaction"])
def test_region_interaction_on_a_random_cnn(submission):
    fresh_seed()
    model, image = random_cnn(3, 4), torch.rand(3, 8, 8)
    a, b = torch.rand(8, 8) > 0.6, torch.rand(8, 8) > 0.6
    got = call(submission.region_interaction, model, image, 2, a, b, 0.1)
    assert isinstance(got, (tuple, list)) and len(got) == 4, "return (drop_a, drop_b, drop_both, interaction)"
    expected = _reference_interaction(model, image, 2, a, b, 0.1)
    for name, g, e in zip(("drop_a", "drop_b", "drop_both", "interaction"), got, expected):
        assert abs(float(g) - e) <= 1e-4 * (1 + abs(e)), f"{name} should be {e:.5f}, got {float(g):.5f}"


@pytest.mark.exercise("12.3", points=2, functions=["region_interaction"])
def test_region_interaction_properties(submission):
    fresh_seed()
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 2)).eval()   # additive: no interaction
    image = torch.rand(3, 6, 6)
    a = torch.zeros(6, 6, dtype=torch.bool)
    a[:3] = True
    got = call(submission.region_interaction, model, image, 1, a, ~a, 0.0)
    assert abs(float(got[3])) < 1e-4, "a linear model has no interaction between regions"
    cnn = random_cnn(3, 3)
    one = call(submission.region_interaction, cnn, image, 0, a, ~a, 0.5)
    two = call(submission.region_interaction, cnn, image, 0, ~a, a, 0.5)
    assert abs(float(one[3]) - float(two[3])) < 1e-4 and abs(float(one[0]) - float(two[1])) < 1e-4, \
        "swapping the two regions swaps drop_a and drop_b and keeps the interaction"
