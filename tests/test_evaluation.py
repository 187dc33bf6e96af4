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
    (lambda a, m: iou_top_k(a, m, fraction=1.5), "fraction must be a number in"),
    (lambda a, m: pearson(a, a[:, :1]), "same shape"),
])
def test_bad_input_names_the_parameter(call, match):
    a, masks = masks_and_maps()
    with pytest.raises(ValueError, match=match):
        call(a, masks)


# --- the similarity measures of the sanity checks (lab 16) --------------------------------------------

def test_ssim_equals_skimage_on_the_same_data_range():
    from skimage.metrics import structural_similarity

    from xai_course.evaluation import normalise_maps, ssim

    g = torch.Generator().manual_seed(1)
    a = torch.randn(3, 2, 20, 23, generator=g)
    b = 0.5 * a + torch.randn(3, 2, 20, 23, generator=g)
    x, y = a.sum(1).double().numpy(), b.sum(1).double().numpy()
    ours = ssim(a, b, absolute=False, normalise=False, data_range=6.0)
    for i in range(3):
        theirs = structural_similarity(x[i], y[i], data_range=6.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False)
        assert ours[i].item() == pytest.approx(theirs, abs=1e-6)
    # the default: |map| rescaled to [0, 1], data range 1
    xn, yn = normalise_maps(a.sum(1).abs()).double().numpy(), normalise_maps(b.sum(1).abs()).double().numpy()
    for i, value in enumerate(ssim(a, b)):
        theirs = structural_similarity(xn[i], yn[i], data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False)
        assert value.item() == pytest.approx(theirs, abs=1e-6)


def test_similarities_by_hand():
    from xai_course.evaluation import hog_similarity, map_similarities, ssim

    g = torch.Generator().manual_seed(2)
    a = torch.randn(2, 3, 24, 24, generator=g)
    for name, value in map_similarities(a, a).items():          # identical maps: 1 on every measure
        np.testing.assert_allclose(value.numpy(), 1.0, atol=1e-6, err_msg=name)
    assert np.allclose(spearman(a, -a).numpy(), -1.0)            # negated: -1 signed, 1 absolute
    assert np.allclose(spearman(a, -a, absolute=True).numpy(), 1.0)
    assert np.allclose(ssim(a, -a).numpy(), 1.0) and np.allclose(hog_similarity(a, -a).numpy(), 1.0)
    assert ssim(a, 3 * a + 0.0).allclose(torch.ones(2))          # rescaled map: the same after normalising
    noise = torch.randn(2, 3, 24, 24, generator=g)
    assert (map_similarities(a, noise)["spearman"].abs() < 0.3).all()


def test_spearman_absolute_equals_scipy():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, 30, generator=g), torch.randn(2, 30, generator=g)
    for i in range(2):
        expected = scipy.stats.spearmanr(a[i].abs().numpy(), b[i].abs().numpy())[0]
        assert spearman(a, b, absolute=True)[i].item() == pytest.approx(expected, abs=1e-6)


def test_similarity_bad_input():
    from xai_course.evaluation import map_similarities, ssim

    a = torch.rand(2, 1, 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        ssim(a, a[:, :, :12])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(a[:, :, :8, :8], a[:, :, :8, :8])
    with pytest.raises(ValueError, match="measures must be"):
        map_similarities(a, a, ["pearson"])
    with pytest.raises(ValueError, match="data_range must be positive"):
        ssim(a, a, normalise=False, data_range=0)
