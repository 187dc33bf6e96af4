"""Known answers for the localisation and similarity measures of xai_course.evaluation."""
import numpy as np
import pytest
import scipy.stats
import torch

from xai_course.evaluation import iou_top_k, pearson, pixel_map, pointing_game, relevance_mass, spearman


def masks_and_maps():
    """Two 4x4 images; the object is the top-left 2x2 square in both."""
    masks = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    masks[:, :, :2, :2] = True
    a = torch.zeros(2, 3, 4, 4)
    a[0, 0, 0, 0] = 3.0           # image 0: peak on the object ...
    a[0, 1, 3, 3] = 1.0           # ... and a smaller positive value off it
    a[1, 2, 3, 3] = 5.0           # image 1: peak off the object
    a[1, 0, 1, 1] = 1.0           # a positive value on it
    a[1, 1, 0, 1] = -4.0          # negative evidence on the object is not positive mass
    return a, masks


def test_pixel_map_sums_channels():
    a, _ = masks_and_maps()
    torch.testing.assert_close(pixel_map(a), a.sum(1))


def test_pointing_game_by_hand():
    a, masks = masks_and_maps()
    assert pointing_game(a, masks).tolist() == [True, False]
    assert pointing_game(a, masks[:, 0]).tolist() == [True, False]      # (N, H, W) masks too


def test_relevance_mass_is_the_positive_share_inside():
    a, masks = masks_and_maps()
    torch.testing.assert_close(relevance_mass(a, masks), torch.tensor([3 / 4, 1 / 6]))
    assert relevance_mass(-a.abs(), masks).tolist() == [0.0, 0.0]       # no positive attribution: 0


def test_iou_top_k_by_hand():
    a, masks = masks_and_maps()
    # k = the mask's 4 pixels; ranking ties (zeros) are broken by position, so the region of image 0
    # is its peak (0,0), the pixel (3,3) and the first two zeros (0,1), (0,2): 2 of 4 on the object
    region0 = torch.zeros(16, dtype=torch.bool)
    region0[[0, 15, 1, 2]] = True
    object_ = masks[0, 0].flatten()
    expected0 = (region0 & object_).sum() / (region0 | object_).sum()
    assert iou_top_k(a, masks)[0].item() == pytest.approx(expected0.item())
    # a map equal to the mask scores 1, a map equal to its complement 0
    perfect = masks.float().expand(-1, 3, -1, -1)
    assert iou_top_k(perfect, masks).tolist() == [1.0, 1.0]
    assert iou_top_k(1 - perfect, masks).tolist() == [0.0, 0.0]
    # a fraction: 1/16 of the pixels is the single peak pixel
    torch.testing.assert_close(iou_top_k(a, masks, fraction=1 / 16), torch.tensor([1 / 4, 0.0]))


def test_correlations_equal_scipy():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 2, 5, 5, generator=g)
    b = a + torch.randn(3, 2, 5, 5, generator=g)
    b[1] = torch.randint(0, 3, (2, 5, 5), generator=g).float()         # ties, averaged as scipy does
    for i in range(3):
        x, y = a[i].flatten().numpy(), b[i].flatten().numpy()
        assert pearson(a, b)[i].item() == pytest.approx(scipy.stats.pearsonr(x, y)[0], abs=1e-6)
        assert spearman(a, b)[i].item() == pytest.approx(scipy.stats.spearmanr(x, y)[0], abs=1e-6)
    assert pearson(a, torch.ones_like(a)).tolist() == [0.0, 0.0, 0.0]  # a constant map: 0, not NaN
    assert np.allclose(spearman(a, a).numpy(), 1.0)


@pytest.mark.parametrize("call, match", [
    (lambda a, m: pointing_game(a[:, :, :3], m), "masks must be"),
    (lambda a, m: relevance_mass(a[0], m), "attributions must be"),
    (lambda a, m: iou_top_k(a, m, fraction=1.5), "fraction must be in"),
    (lambda a, m: pearson(a, a[:, :1]), "same shape"),
])
def test_bad_input_names_the_parameter(call, match):
    a, masks = masks_and_maps()
    with pytest.raises(ValueError, match=match):
        call(a, masks)
