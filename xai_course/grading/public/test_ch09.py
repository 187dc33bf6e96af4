"""Grading tests of chapter 9 (notebooks/09_lrp.ipynb): fresh random inputs and networks each run.

The references are written out in plain torch, independently of the package's ``lrp``.
"""
import pytest
import torch

from xai_course.grading.checks import assert_close, call, fresh_seed


# --- Exercise 9.1: lrp_epsilon_dense(weights, biases, x, target, epsilon) -> (D,) ---------------------
def _stabilize(z, epsilon):
    return z + ((z == 0).to(z) + z.sign()) * epsilon


def _reference_epsilon(weights, biases, x, target, epsilon):
    activations = [x]
    for l, (w, b) in enumerate(zip(weights, biases)):
        z = w @ activations[-1] + b
        activations.append(z if l == len(weights) - 1 else torch.relu(z))
    relevance = torch.zeros_like(activations[-1])
    relevance[target] = activations[-1][target]
    for w, b, a in zip(reversed(weights), reversed(biases), reversed(activations[:-1])):
        relevance = a * (w.T @ (relevance / _stabilize(w @ a + b, epsilon)))
    return relevance


def _random_network(sizes, bias=True):
    weights = [torch.randn(n_out, n_in) / n_in**0.5 for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    biases = [(0.3 * torch.randn(n_out)) if bias else torch.zeros(n_out) for n_out in sizes[1:]]
    return weights, biases


@pytest.mark.exercise("09.1", points=3, functions=["lrp_epsilon_dense"])
@pytest.mark.parametrize("epsilon", [1e-6, 0.1, 2.0])
def test_lrp_epsilon_dense_on_random_networks(submission, epsilon):
    fresh_seed()
    for depth in (1, 2, 3):
        sizes = [int(torch.randint(2, 8, ()))] + [int(torch.randint(3, 10, ())) for _ in range(depth)]
        sizes.append(int(torch.randint(1, 5, ())))
        weights, biases = _random_network(sizes)
        x, target = torch.rand(sizes[0]), int(torch.randint(0, sizes[-1], ()))
        expected = _reference_epsilon(weights, biases, x, target, epsilon)
        assert_close(call(submission.lrp_epsilon_dense, weights, biases, x, target, epsilon=epsilon), expected,
                     f"lrp_epsilon_dense (layers {sizes}, epsilon {epsilon})",
                     atol=1e-5 + 1e-4 * float(expected.abs().max()))


@pytest.mark.exercise("09.1", points=3, functions=["lrp_epsilon_dense"])
def test_lrp_epsilon_dense_conserves_without_biases(submission):
    fresh_seed()
    weights, biases = _random_network([5, 8, 6, 3], bias=False)
    x = torch.rand(5)
    got = call(submission.lrp_epsilon_dense, weights, biases, x, 2, epsilon=1e-9)
    h = x
    for w in weights[:-1]:
        h = torch.relu(w @ h)
    f = float((weights[-1] @ h)[2])
    assert abs(float(got.sum()) - f) < 1e-4 * (1 + abs(f)), \
        f"without biases and with a tiny epsilon the relevance must sum to f(x) = {f:.5f}, got {float(got.sum()):.5f}"


# --- Exercise 9.2: z_plus_layer(a, weight, relevance) -> (D,) -----------------------------------------------
def _reference_z_plus(a, weight, relevance):
    w = weight.clamp(min=0)
    z = w @ a
    s = torch.where(z > 0, relevance / torch.where(z > 0, z, torch.ones_like(z)), torch.zeros_like(z))
    return a * (w.T @ s)


@pytest.mark.exercise("09.2", points=2, functions=["z_plus_layer"])
def test_z_plus_layer_on_random_layers(submission):
    fresh_seed()
    for _ in range(3):
        d, k = int(torch.randint(2, 12, ())), int(torch.randint(1, 8, ()))
        a = torch.relu(torch.randn(d))
        weight, relevance = torch.randn(k, d), torch.randn(k)
        assert_close(call(submission.z_plus_layer, a, weight, relevance), _reference_z_plus(a, weight, relevance),
                     f"z_plus_layer (D = {d}, K = {k})", atol=1e-5)


@pytest.mark.exercise("09.2", points=2, functions=["z_plus_layer"])
def test_z_plus_layer_passes_nothing_where_z_is_zero(submission):
    fresh_seed()
    weight = -torch.rand(3, 4)                      # no positive weight: every z_k = 0
    got = call(submission.z_plus_layer, torch.rand(4), weight, torch.rand(3))
    assert torch.isfinite(got).all() and (got == 0).all(), "outputs with z_k = 0 must pass nothing on (and no NaN)"


# --- Exercise 9.3: top_share(relevance, top) -> (N,) --------------------------------------------------------
def _reference_top_share(relevance, top):
    r = relevance.sum(1).flatten(1).abs()
    k = max(1, int(top * r.shape[1]))
    return r.topk(k, dim=1).values.sum(1) / r.sum(1)


@pytest.mark.exercise("09.3", points=2, functions=["top_share"])
@pytest.mark.parametrize("top", [0.1, 0.25, 0.5])
def test_top_share_on_random_maps(submission, top):
    fresh_seed()
    n, c, h = int(torch.randint(1, 6, ())), int(torch.randint(1, 4, ())), int(torch.randint(4, 17, ()))
    maps = torch.randn(n, c, h, h) * torch.rand(n, 1, 1, 1) * 10
    assert_close(call(submission.top_share, maps, top=top), _reference_top_share(maps, top),
                 f"top_share(maps of shape {tuple(maps.shape)}, top={top})", atol=1e-5)


@pytest.mark.exercise("09.3", points=2, functions=["top_share"])
def test_top_share_known_maps(submission):
    fresh_seed()
    one = torch.zeros(3, 2, 6, 6)
    for k in range(3):
        one[k, int(torch.randint(0, 2, ())), int(torch.randint(0, 6, ())), int(torch.randint(0, 6, ()))] = -1.0 - k
    assert_close(call(submission.top_share, one, top=0.1), torch.ones(3), "top_share of one-pixel maps")
    assert_close(call(submission.top_share, torch.full((2, 1, 10, 10), 3.0), top=0.3), torch.full((2,), 0.3),
                 "top_share of uniform maps")
