"""Grading tests of lab 16 (notebooks/16_sanity_checks.ipynb): fresh random inputs and models each run."""
import pytest
import scipy.stats
import torch

from xai_course.grading.checks import assert_close, call, check_tensor, fresh_seed, random_cnn


# --- Exercise 16.1: rank_correlation(a, b, absolute=False) -> (N,) -------------------------------------
def _reference_spearman(a, b, absolute):
    if absolute:
        a, b = a.abs(), b.abs()
    return torch.tensor([scipy.stats.spearmanr(x.numpy(), y.numpy())[0] for x, y in zip(a, b)],
                        dtype=torch.float32)


@pytest.mark.exercise("16.1", points=2, functions=["rank_correlation"], forbid=("scipy", "skimage", "pandas", "kornia"))
@pytest.mark.parametrize("absolute", [False, True])
def test_rank_correlation_against_scipy(submission, absolute):
    fresh_seed()
    n, d = int(torch.randint(1, 6, ())), int(torch.randint(5, 60, ()))
    a = torch.randn(n, d)
    b = a + torch.randn(n, d) * float(0.2 + 2 * torch.rand(()))
    got = check_tensor(call(submission.rank_correlation, a, b, absolute=absolute), (n,),
                       f"rank_correlation(a, b, absolute={absolute})")
    assert_close(got, _reference_spearman(a, b, absolute), f"rank_correlation(a, b, absolute={absolute})",
                 atol=1e-5)


@pytest.mark.exercise("16.1", points=2, functions=["rank_correlation"], forbid=("scipy", "skimage", "pandas", "kornia"))
def test_rank_correlation_by_hand(submission):
    fresh_seed()
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [0.3, -2.0, 1.1, 0.5, -0.7]])
    b = torch.tensor([[2.0, 1.0, 3.0, 4.0, 5.0], [-0.3, 2.0, -1.1, -0.5, 0.7]])
    # one swap among 5: 1 - 6 * 2 / (5 * 24) = 0.9; a negated map: -1 signed, 1 absolute
    assert_close(call(submission.rank_correlation, a, b), torch.tensor([0.9, -1.0]), "rank_correlation by hand",
                 atol=1e-5)
    assert_close(call(submission.rank_correlation, a[1:], b[1:], absolute=True), torch.tensor([1.0]),
                 "rank_correlation of a map and its negation, absolute=True", atol=1e-5)


# --- Exercise 16.2: global_ssim(a, b, data_range) -> (N,) ----------------------------------------------
def _reference_global_ssim(a, b, r):
    x, y = a.flatten(1).double(), b.flatten(1).double()
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    mx, my = x.mean(1), y.mean(1)
    cov = ((x - mx[:, None]) * (y - my[:, None])).mean(1)
    vx, vy = ((x - mx[:, None]) ** 2).mean(1), ((y - my[:, None]) ** 2).mean(1)
    return ((2 * mx * my + c1) * (2 * cov + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))).float()


@pytest.mark.exercise("16.2", points=2, functions=["global_ssim"], forbid=("scipy", "skimage", "pandas", "kornia"))
def test_global_ssim_on_random_maps(submission):
    fresh_seed()
    n, h, w = int(torch.randint(1, 5, ())), int(torch.randint(3, 12, ())), int(torch.randint(3, 12, ()))
    r = float(0.5 + 3 * torch.rand(()))
    a = torch.rand(n, h, w) * r
    b = (0.6 * a + 0.4 * torch.rand(n, h, w) * r)
    got = check_tensor(call(submission.global_ssim, a, b, r), (n,), "global_ssim(a, b, data_range)")
    assert_close(got, _reference_global_ssim(a, b, r), f"global_ssim on ({n}, {h}, {w}) maps", atol=1e-5)
    assert_close(call(submission.global_ssim, a, a, r), torch.ones(n), "global_ssim(a, a): identical maps",
                 atol=1e-5)


@pytest.mark.exercise("16.2", points=2, functions=["global_ssim"], forbid=("scipy", "skimage", "pandas", "kornia"))
def test_global_ssim_by_hand(submission):
    fresh_seed()
    got = call(submission.global_ssim, torch.full((1, 5, 5), 0.5), torch.full((1, 5, 5), 0.25), 1.0)
    assert_close(got, torch.tensor([(0.25 + 1e-4) / (0.3125 + 1e-4)]), "two constant images 0.5 and 0.25",
                 atol=1e-5)
    got = call(submission.global_ssim, torch.full((1, 5, 5), 1.0), torch.full((1, 5, 5), 2.0), 2.0)
    assert_close(got, torch.tensor([(4 + 4e-4) / (5 + 4e-4)]), "constant images 1 and 2, data_range 2", atol=1e-5)


# --- Exercise 16.3: edge_detector(model, inputs, target) -> (N, 1, H, W), graded by properties ----------
@pytest.mark.exercise("16.3", points=3, functions=["edge_detector"])
def test_edge_detector_shape_sign_and_flat_images(submission):
    fresh_seed()
    n, c, h, w = int(torch.randint(1, 4, ())), 3, int(torch.randint(6, 14, ())), int(torch.randint(6, 14, ()))
    x = torch.rand(n, c, h, w)
    got = check_tensor(call(submission.edge_detector, random_cnn(3, 4), x, 0), (n, 1, h, w), "edge_detector(...)")
    assert (got >= 0).all(), "an edge strength is never negative"
    assert got.abs().sum() > 0, "random images have edges: the map must not be all zero"
    flat = call(submission.edge_detector, random_cnn(3, 4), torch.full((2, c, h, w), float(torch.rand(()))), 1)
    assert_close(flat, torch.zeros(2, 1, h, w), "edge_detector of constant images (no edges)", atol=1e-6)


@pytest.mark.exercise("16.3", points=3, functions=["edge_detector"])
def test_edge_detector_ignores_the_model_and_the_target(submission):
    fresh_seed()
    x = torch.rand(3, 3, 10, 10)
    first = call(submission.edge_detector, random_cnn(3, 4), x, 0)
    second = call(submission.edge_detector, random_cnn(3, 4), x, torch.tensor([3, 1, 2]))
    assert_close(second, first, "edge_detector with another model and target", atol=1e-6)


@pytest.mark.exercise("16.3", points=3, functions=["edge_detector"])
@pytest.mark.parametrize("direction", ["vertical", "horizontal"])
def test_edge_detector_finds_a_step_edge(submission, direction):
    fresh_seed()
    size = int(torch.randint(8, 16, ()))
    at = int(torch.randint(3, size - 3, ()))
    x = torch.zeros(1, 3, size, size)
    if direction == "vertical":
        x[..., at:] = 1.0
    else:
        x[..., at:, :] = 1.0
    got = call(submission.edge_detector, random_cnn(3, 4), x, 0)[0, 0]
    m = got if direction == "vertical" else got.T                  # the edge runs between columns at-1 | at
    edge, flat = m[:, at - 1:at + 1].amax(), torch.cat([m[:, :at - 2], m[:, at + 2:]], 1).amax()
    assert edge > flat + 1e-6, (f"a {direction} step edge: the map at the edge ({edge:.3g}) must exceed the "
                                f"map on the flat parts ({flat:.3g})")
