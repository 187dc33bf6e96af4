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


# --- Exercise 9.3: alpha_beta_layer(a, weight, relevance, alpha, beta) -> (D,); unconserved_case() -> (a, W, R)
def _reference_alpha_beta(a, weight, relevance, alpha, beta):
    passed = []
    for w in (weight.clamp(min=0), weight.clamp(max=0)):
        z = w @ a
        s = torch.where(z != 0, relevance / torch.where(z != 0, z, torch.ones_like(z)), torch.zeros_like(z))
        passed.append(a * (w.T @ s))
    return alpha * passed[0] - beta * passed[1]


@pytest.mark.exercise("09.3", points=2, functions=["alpha_beta_layer"])
@pytest.mark.parametrize("alpha, beta", [(2.0, 1.0), (1.0, 0.0), (1.5, 0.5)])
def test_alpha_beta_layer_on_random_layers(submission, alpha, beta):
    fresh_seed()
    for _ in range(3):
        d, k = int(torch.randint(2, 12, ())), int(torch.randint(1, 8, ()))
        a = torch.rand(d) * (torch.rand(d) > 0.3)          # >= 0, some inputs off (empty parts happen)
        weight, relevance = torch.randn(k, d), torch.randn(k)
        expected = _reference_alpha_beta(a, weight, relevance, alpha, beta)
        assert_close(call(submission.alpha_beta_layer, a, weight, relevance, alpha=alpha, beta=beta), expected,
                     f"alpha_beta_layer (D = {d}, K = {k}, alpha = {alpha}, beta = {beta})",
                     atol=1e-5 + 1e-4 * float(expected.abs().max()))


@pytest.mark.exercise("09.3", points=2, functions=["alpha_beta_layer"])
def test_alpha_beta_layer_conserves_only_with_both_parts(submission):
    fresh_seed()
    d, k = int(torch.randint(3, 10, ())), int(torch.randint(2, 6, ()))
    a = torch.rand(d) + 0.1
    weight, relevance = torch.randn(k, d), torch.randn(k)
    weight[:, 0], weight[:, 1] = weight[:, 0].abs() + 0.1, -weight[:, 1].abs() - 0.1  # both parts in every output
    got = call(submission.alpha_beta_layer, a, weight, relevance, alpha=2.0, beta=1.0)
    assert abs(float(got.sum()) - float(relevance.sum())) < 1e-4 * (1 + float(relevance.abs().sum())), \
        "with positive and negative contributions in every output, alpha - beta = 1 must conserve relevance"
    got = call(submission.alpha_beta_layer, a, weight.abs(), relevance, alpha=2.0, beta=1.0)
    assert abs(float(got.sum()) - 2 * float(relevance.sum())) < 1e-4 * (1 + float(relevance.abs().sum())), \
        "with no negative contribution anywhere every output passes alpha * R_k"
    dead = call(submission.alpha_beta_layer, torch.zeros(d), weight, relevance, alpha=2.0, beta=1.0)
    assert torch.isfinite(dead).all() and (dead == 0).all(), "empty parts must pass nothing on (and no NaN)"


@pytest.mark.exercise("09.3", points=2, functions=["unconserved_case"])
def test_unconserved_case_breaks_conservation_although_its_outputs_fire(submission):
    fresh_seed()
    case = call(submission.unconserved_case)
    assert isinstance(case, (tuple, list)) and len(case) == 3, \
        "unconserved_case must return a tuple (a, weight, relevance)"
    assert all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in case), \
        "a, weight and relevance must be floating-point tensors"
    a, weight, relevance = (t.detach().double() for t in case)
    shapes_ok = a.ndim == 1 and relevance.ndim == 1 and weight.shape == (relevance.numel(), a.numel())
    assert shapes_ok, \
        f"shapes must be a (D,), weight (K, D), relevance (K,); got {tuple(a.shape)}, {tuple(weight.shape)}, " \
        f"{tuple(relevance.shape)}"
    assert 0 < a.numel() <= 10_000 and 0 < relevance.numel() <= 10_000, "a layer of at most 10,000 inputs and outputs"
    assert all(torch.isfinite(t).all() for t in (a, weight, relevance)), "no NaN or infinite values"
    assert (a >= 0).all(), "the inputs a must be >= 0 (as after a ReLU)"
    assert (relevance != 0).any(), "some output must carry relevance"
    assert ((weight @ a > 0) | (relevance == 0)).all(), \
        "every output with R_k != 0 must fire: z_k = sum_j a_j w_kj > 0"
    passed = float(_reference_alpha_beta(a, weight, relevance, 2.0, 1.0).sum())
    total, size = float(relevance.sum()), float(relevance.abs().sum())
    assert abs(passed - total) >= 0.1 * size, \
        f"alpha = 2, beta = 1 passes on {passed:.4g} of sum R_k = {total:.4g}: conserved to within 10% of sum |R_k|"
