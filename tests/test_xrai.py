"""XRAI (chapter 6): exact parity with PAIR's saliency library, known answers, hygiene, bad input."""
import numpy as np
import pytest
import torch

from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from conftest import make_architecture
from xai_course import data
from xai_course.attribution import METHODS, integrated_gradients, xrai
from xai_course.attribution.xrai import select_regions, xrai_segments

pair = pytest.importorskip("saliency.core.xrai")


def pair_xrai(attribution, regions, algorithm, area_threshold, min_pixel_diff=50):
    """PAIR's XRAI map for one image from a summed attribution (H, W) and regions (K, H, W)."""
    a = attribution.double().numpy()[..., None]       # one channel: PAIR's max over channels is a no-op
    params = pair.XRAIParameters(algorithm=algorithm, area_threshold=area_threshold)
    params.experimental_params["min_pixel_diff"] = min_pixel_diff
    return pair.XRAI().GetMask(np.zeros_like(a), None, segments=list(regions.numpy()), base_attribution=a,
                               extra_parameters=params)


def random_rectangles(k, h, w, gen):
    """k random overlapping rectangles (some tiny, so the 50-pixel rule bites), as (k, h, w) bool."""
    masks = torch.zeros(k, h, w, dtype=torch.bool)
    for i in range(k):
        r0, c0 = (int(v) for v in torch.randint(0, h - 2, (2,), generator=gen))
        r1 = r0 + 1 + int(torch.randint(0, h - r0 - 1, (1,), generator=gen))
        c1 = c0 + 1 + int(torch.randint(0, w - c0 - 1, (1,), generator=gen))
        masks[i, r0:r1, c0:c1] = True
    return masks


@pytest.mark.parametrize("algorithm", ["full", "fast"])
@pytest.mark.parametrize("area_threshold", [1.0, 0.5, 0.1])
@pytest.mark.parametrize("segmenter", ["course", "pair", "rectangles"])
def test_parity_with_pair_bit_for_bit(algorithm, area_threshold, segmenter):
    images = data.shapes(2, seed=7).images
    gen = torch.Generator().manual_seed(3)
    attributions = torch.randn(2, 3, 64, 64, generator=gen, dtype=torch.float64)
    for i in range(2):
        if segmenter == "course":
            regions = xrai_segments(images[i:i + 1])[0]
        elif segmenter == "pair":
            regions = torch.from_numpy(np.stack(pair._get_segments_felzenszwalb(images[i].permute(1, 2, 0).numpy())))
        else:
            regions = random_rectangles(60, 64, 64, gen)
        ours = select_regions(attributions[i].sum(0), regions, algorithm, area_threshold)
        theirs = pair_xrai(attributions[i].sum(0), regions, algorithm, area_threshold)
        np.testing.assert_array_equal(ours.numpy(), theirs)


@pytest.mark.parametrize("min_pixel_diff", [1, 10, 200])
def test_parity_with_pair_for_other_pixel_rules(min_pixel_diff):
    gen = torch.Generator().manual_seed(min_pixel_diff)
    regions = random_rectangles(40, 32, 32, gen)
    a = torch.randn(32, 32, generator=gen, dtype=torch.float64)
    for algorithm in ("full", "fast"):
        ours = select_regions(a, regions, algorithm, 1.0, min_pixel_diff)
        np.testing.assert_array_equal(ours.numpy(), pair_xrai(a, regions, algorithm, 1.0, min_pixel_diff))


def test_public_function_matches_pair_and_sums_channels():
    model, x, target = make_architecture("course_cnn")
    gen = torch.Generator().manual_seed(0)
    attributions = torch.randn(x.shape, generator=gen)
    regions = xrai_segments(x)
    for algorithm in ("full", "fast"):
        got = xrai(model, x, target, attributions=attributions, segments=regions, algorithm=algorithm)
        assert got.shape == (x.shape[0], 1, 64, 64) and got.dtype == x.dtype
        for i in range(len(x)):
            theirs = pair_xrai(attributions[i].double().sum(0), regions[i], algorithm, 1.0)
            np.testing.assert_allclose(got[i, 0].numpy(), theirs, rtol=1e-6, atol=1e-7)   # float32 result
        one = xrai(model, x, target, attributions=attributions.sum(1, keepdim=True), segments=regions,
                   algorithm=algorithm)
        torch.testing.assert_close(one, got)


def test_known_answers_on_disjoint_regions():
    a = torch.zeros(16, 16)
    a[:, :8], a[:, 8:] = 1.0, 3.0
    halves = torch.zeros(2, 16, 16, dtype=torch.bool)
    halves[0, :, :8], halves[1, :, 8:] = True, True
    for algorithm in ("full", "fast"):
        torch.testing.assert_close(select_regions(a, halves, algorithm).float(), a)
    # area_threshold 0: only the best region (the right half) is added; the rest gets its own mean
    a[:, :8] = torch.arange(16.0)[:, None]
    got = select_regions(a, halves, "full", area_threshold=0.0)
    assert torch.all(got[:, 8:] == 3.0) and torch.allclose(got[:, :8], a[:, :8].mean().double())
    # a region adding fewer than 50 pixels is dropped: its pixels join the uncovered rest
    small = torch.zeros(2, 16, 16, dtype=torch.bool)
    small[0, :6, :6], small[1, 6:, :] = True, True                       # 36 and 160 pixels
    got = select_regions(torch.ones(16, 16), small, "full")
    assert torch.all(got == 1.0)
    b = torch.zeros(16, 16)
    b[:6, :6] = 10.0
    got = select_regions(b, small, "full")
    assert torch.allclose(got[:6, 6:], got[0, 6]) and got[0, 0] == got[0, 6]   # one uncovered rest
    assert torch.isclose(got[0, 0], b[:6].mean().double())


def test_default_attributions_are_ig_from_black_and_white():
    model, x, target = make_architecture("course_cnn")
    x, target = x[:2], target[:2]
    regions = xrai_segments(x)
    ig = sum(integrated_gradients(model, x, target, baseline=v, steps=8) for v in (0.0, 1.0)) / 2
    torch.testing.assert_close(xrai(model, x, target, segments=regions, steps=8),
                               xrai(model, x, target, attributions=ig, segments=regions))
    assert METHODS["xrai"] is xrai


def test_default_segments_scale_pairs_recipe():
    x = data.shapes(1, seed=2).images
    regions = xrai_segments(x)[0]
    assert regions.dtype == torch.bool and regions.shape[1:] == (64, 64) and regions.any((1, 2)).all()
    assert regions.any(0).all()                                           # every pixel in some region
    undilated = xrai_segments(x, dilation=0)[0]
    assert len(undilated) == len(regions) and (regions.sum((1, 2)) >= undilated.sum((1, 2))).all()
    assert torch.all(undilated.sum(0) == 6)                               # 6 scales, each a partition
    # the dilation is skimage's binary dilation by a disk (PAIR's), for PAIR's radius 5 and others
    from skimage.morphology import dilation, disk

    for radius in (1, 5):
        got = xrai_segments(x, dilation=radius)[0].numpy()
        expected = np.stack([dilation(m, footprint=disk(radius)) for m in undilated.numpy()])
        np.testing.assert_array_equal(got, expected)


def test_hygiene_and_no_grad():
    for name in ("course_resnet", "resnet_style"):
        model, x, target = make_architecture(name)
        x = x[:2]
        before, x_before = snapshot(model), inputs_snapshot(x)
        with torch.no_grad():
            got = xrai(model, x, target[:2], steps=4)
        assert got.shape == (2, 1) + x.shape[2:] and torch.isfinite(got).all()
        assert_unchanged(before, snapshot(model))
        assert_inputs_unchanged(x_before, x)


def test_train_mode_warns_and_is_restored():
    model, x, target = make_architecture("course_resnet")
    model.train()
    with pytest.warns(UserWarning, match="train mode"):
        xrai(model, x[:1], target[:1], steps=4)
    assert model.training


@pytest.mark.parametrize("kwargs, match", [
    (dict(algorithm="slow"), "algorithm"),
    (dict(area_threshold=1.5), "area_threshold"),
    (dict(min_pixel_diff=0), "min_pixel_diff"),
    (dict(attributions=torch.zeros(2, 3, 8, 8)), "attributions"),
    (dict(attributions=torch.full((2, 3, 64, 64), float("nan"))), "attributions"),
    (dict(segments=[torch.ones(3, 64, 64, dtype=torch.bool)]), "segments"),
    (dict(segments=[torch.ones(3, 64, 64), torch.ones(3, 64, 64)]), r"segments\[0\]"),
    (dict(segments=[torch.ones(3, 64, 64, dtype=torch.bool), torch.ones(3, 32, 32, dtype=torch.bool)]),
     r"segments\[1\]"),
])
def test_bad_input(kwargs, match):
    model, x, target = make_architecture("course_cnn")
    with pytest.raises((ValueError, TypeError), match=match):
        xrai(model, x[:2], target[:2], **kwargs)


def test_flat_inputs_and_bad_target_are_refused():
    model, x, target = make_architecture("mlp")
    with pytest.raises(ValueError, match="inputs"):
        xrai(model, x, target)
    model, x, _ = make_architecture("course_cnn")
    with pytest.raises(ValueError, match="target"):
        xrai(model, x[:1], [0, 1])
