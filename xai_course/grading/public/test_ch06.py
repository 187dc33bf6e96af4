"""Grading tests of chapter 6 (notebooks/06_xrai.ipynb): fresh random inputs each run."""
import pytest
import torch

from xai_course.grading.checks import assert_close, call, fresh_seed


# --- Exercise 6.1: gain_per_area(attribution, regions, covered) -> (K,) -------------------------------
def _reference_gain(a, regions, covered):
    new = (regions & ~covered).flatten(1).double()
    count = new.sum(1)
    gain = new @ a.double().flatten() / count.clamp(min=1)
    return torch.where(count > 0, gain, torch.full_like(gain, -float("inf")))


def _check_gain(submission, a, regions, covered):
    got = call(submission.gain_per_area, a, regions, covered)
    expected = _reference_gain(a, regions, covered)
    assert isinstance(got, torch.Tensor) and got.shape == expected.shape, \
        f"gain_per_area must return a tensor of shape {tuple(expected.shape)}"
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isinf(got) & (got < 0), ~finite), "-inf exactly for the regions adding no pixel"
    assert_close(got[finite], expected[finite], "gain_per_area(...) of the regions adding pixels")


@pytest.mark.exercise("06.1", points=2, functions=["gain_per_area"])
def test_gain_per_area_on_random_regions(submission):
    fresh_seed()
    h, w, k = int(torch.randint(5, 30, ())), int(torch.randint(5, 30, ())), int(torch.randint(2, 12, ()))
    a = torch.randn(h, w)
    regions = torch.rand(k, h, w) < 0.3
    regions[0] = False                                   # one region adds nothing
    _check_gain(submission, a, regions, torch.rand(h, w) < 0.5)


@pytest.mark.exercise("06.1", points=2, functions=["gain_per_area"])
def test_gain_per_area_with_nothing_and_everything_covered(submission):
    fresh_seed()
    a, regions = torch.randn(12, 9), torch.rand(5, 12, 9) < 0.4
    _check_gain(submission, a, regions, torch.zeros(12, 9, dtype=torch.bool))
    got = call(submission.gain_per_area, a, regions, torch.ones(12, 9, dtype=torch.bool))
    assert torch.all(torch.isinf(got) & (got < 0)), "with everything covered every gain is -inf"


# --- Exercise 6.2: regions_from_map(xrai_map) -> (L, H, W) bool -----------------------------------------
@pytest.mark.exercise("06.2", points=2, functions=["regions_from_map"])
def test_regions_from_map_on_random_piecewise_constant_maps(submission):
    fresh_seed()
    levels = int(torch.randint(2, 9, ()))
    values = torch.randn(levels)
    labels = torch.randint(0, levels, (int(torch.randint(4, 30, ())), int(torch.randint(4, 30, ()))))
    labels.view(-1)[:levels] = torch.arange(levels)
    got = call(submission.regions_from_map, values[labels])
    order = values.argsort(descending=True)
    expected = labels[None] == order[:, None, None]
    assert isinstance(got, torch.Tensor) and got.dtype == torch.bool and got.shape == expected.shape, \
        f"regions_from_map must return a boolean tensor of shape {tuple(expected.shape)}"
    assert torch.equal(got, expected), "one mask per value, from the highest value to the lowest"


# --- Exercise 6.3: share_on_object(maps, masks, fraction) -> (N,) ---------------------------------------
@pytest.mark.exercise("06.3", points=3, functions=["share_on_object"])
def test_share_on_object_properties(submission):
    fresh_seed()
    n, h, w = int(torch.randint(1, 5, ())), 16, 16
    masks = torch.rand(n, 1, h, w) < 0.3
    area = masks.float().mean((1, 2, 3))
    noise = torch.randn(n, 3, h, w)
    assert_close(call(submission.share_on_object, noise, masks, 1.0), area, "keeping every pixel")
    perfect = masks.float() + 0.01 * torch.rand(n, 1, h, w)
    k = int(masks.sum((1, 2, 3)).min())
    fraction = k / (h * w)
    assert_close(call(submission.share_on_object, perfect, masks, fraction), torch.ones(n),
                 "a map larger on the object than anywhere else")
    got = call(submission.share_on_object, noise, masks, 0.25)
    kept = round(0.25 * h * w)
    top = noise.sum(1).flatten(1).topk(kept, dim=1).indices
    assert_close(got, masks.flatten(1).gather(1, top).float().mean(1), "share at fraction 0.25")
