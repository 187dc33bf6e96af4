"""Grading tests of lab 14 (notebooks/14_pixel_perturbation.ipynb): fresh random inputs and models each run."""
import pytest
import torch
from torch import nn

from xai_course.grading.checks import call, fresh_seed, load_model, random_cnn


# --- Exercise 14.1: best_deletion_order(weight, image) -> LongTensor (H*W,) ------------------------------
def _logits_after(weight, image, order):
    """z - b after removing the first k pixels of ``order`` (black fill), for k = 1..H*W."""
    contribution = (weight * image).sum(0).flatten()
    kept = contribution.sum() - contribution[order].cumsum(0)
    return kept


def _check_order(submission, weight, image, what):
    got = call(submission.best_deletion_order, weight, image)
    hw = image.shape[1] * image.shape[2]
    assert isinstance(got, torch.Tensor) and got.shape == (hw,), f"{what}: return a tensor of shape (H*W,) = ({hw},)"
    assert not got.is_floating_point(), f"{what}: return integer pixel indices"
    assert sorted(got.long().tolist()) == list(range(hw)), f"{what}: the order must be a permutation of 0..H*W-1"
    best = _logits_after(weight, image, (weight * image).sum(0).flatten().argsort(descending=True))
    mine = _logits_after(weight, image, got.long())
    worst = (mine - best).max().item()
    assert worst <= 1e-4 * (1 + best.abs().max().item()), \
        f"{what}: after some k your order leaves the logit {worst:.4g} higher than the best order does"


@pytest.mark.exercise("14.1", points=2, functions=["best_deletion_order"])
def test_best_deletion_order_on_random_images(submission):
    fresh_seed()
    c, h, w = int(torch.randint(1, 4, ())), int(torch.randint(2, 7, ())), int(torch.randint(2, 7, ()))
    _check_order(submission, torch.randn(c, h, w), torch.rand(c, h, w), f"weights and image ({c}, {h}, {w})")


@pytest.mark.exercise("14.1", points=2, functions=["best_deletion_order"])
def test_best_deletion_order_with_ties_and_negative_pixels(submission):
    fresh_seed()
    weight = torch.randint(-2, 3, (2, 4, 5)).float()              # many equal contributions
    image = torch.randn(2, 4, 5).round()
    _check_order(submission, weight, image, "integer weights and image (ties)")


# --- Exercise 14.2: faithfulness_from_subsets(model, image, target, attribution, subsets) -> float ------
def _reference_faithfulness(model, image, target, attribution, subsets):
    c, h, w = image.shape
    copies = image.reshape(1, c, h * w).repeat(len(subsets), 1, 1)
    for i, s in enumerate(subsets):
        copies[i, :, s] = 0.0
    with torch.no_grad():
        z = model(torch.cat([image[None], copies.view(-1, c, h, w)])).double()[:, target]
    drops = z[0] - z[1:]
    sums = attribution.double().sum(0).flatten()[subsets].sum(1)
    drops, sums = drops - drops.mean(), sums - sums.mean()
    norm = (drops.norm() * sums.norm()).item()
    return float((drops * sums).sum() / norm) if norm > 0 else 0.0


def _subsets(count, size, pixels):
    return torch.stack([torch.randperm(pixels)[:size] for _ in range(count)])


@pytest.mark.exercise("14.2", points=2, functions=["faithfulness_from_subsets"])
def test_faithfulness_on_a_random_cnn(submission):
    fresh_seed()
    model, image = random_cnn(3, 4), torch.rand(3, 8, 8)
    attribution, subsets = torch.randn(3, 8, 8), _subsets(int(torch.randint(8, 20, ())), 6, 64)
    got = call(submission.faithfulness_from_subsets, model, image, 1, attribution, subsets)
    expected = _reference_faithfulness(model, image, 1, attribution, subsets)
    assert isinstance(got, float), f"return a Python float, not {type(got).__name__}"
    assert abs(got - expected) <= 1e-4, f"correlation should be {expected:.5f}, got {got:.5f}"


@pytest.mark.exercise("14.2", points=2, functions=["faithfulness_from_subsets"])
def test_faithfulness_of_exact_and_negated_linear_maps(submission):
    fresh_seed()
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 5, 3)).eval()
    image, subsets = torch.rand(2, 5, 5), _subsets(10, 4, 25)
    exact = model[1].weight.detach()[2].view(2, 5, 5) * image    # gradient x input: drops equal the sums
    got = call(submission.faithfulness_from_subsets, model, image, 2, exact, subsets)
    assert abs(float(got) - 1.0) <= 1e-4, f"exact attributions of a linear model: correlation 1, got {got}"
    got = call(submission.faithfulness_from_subsets, model, image, 2, -exact[:1] - exact[1:], subsets)
    assert abs(float(got) + 1.0) <= 1e-4, f"negated (one-channel) attributions: correlation -1, got {got}"


# --- Exercise 14.3: keep_order(model, images, target) -> LongTensor (N, H*W), an experiment ---------------
def _afoc_at_half(model, x, t, order):
    n, hw = order.shape
    first = torch.zeros(n, hw, dtype=torch.bool)
    first.scatter_(1, order[:, :hw // 2], True)
    mean = x.mean((2, 3), keepdim=True).expand_as(x)
    xk = torch.where(first.view(n, 1, *x.shape[2:]), mean, x)
    with torch.no_grad():
        p0 = model(x).softmax(1)[torch.arange(n), t]
        pk = model(xk).softmax(1)
    return ((pk[torch.arange(n), t] - p0).abs() / p0).mean().item(), (pk.argmax(1) == t).float().mean().item()


@pytest.mark.exercise("14.3", points=3, functions=["keep_order"])
def test_keep_order_beats_random_orders_on_held_out_images(submission):
    seed = fresh_seed()
    from xai_course.data import shapes
    from xai_course.models.train import TEST_SEED

    model = load_model("shapes_cnn")
    x = shapes(12, seed=TEST_SEED + 100 + seed % 10_000).images
    with torch.no_grad():
        t = model(x).argmax(1)
    order = call(submission.keep_order, model, x, t, time_limit=60)
    assert isinstance(order, torch.Tensor) and order.shape == (12, 4096), "return a tensor (N, H*W) = (12, 4096)"
    assert not order.is_floating_point(), "return integer pixel indices"
    order = order.long()
    assert (order.sort(1).values == torch.arange(4096)).all(), "each row must be a permutation of 0..H*W-1"
    mine, survived = _afoc_at_half(model, x, t, order)
    g = torch.Generator().manual_seed(seed)
    random = sum(_afoc_at_half(model, x, t, torch.stack([torch.randperm(4096, generator=g) for _ in range(12)]))[0]
                 for _ in range(3)) / 3
    assert mine < random / 3, f"AFOC at 50% least important removed: yours {mine:.3f}, random orders {random:.3f}; " \
                              f"yours must be below a third of random's"
    assert survived >= 0.75, f"the predicted class survived on {survived:.0%} of the images; at least 75% needed"
