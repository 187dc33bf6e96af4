"""Grading tests of chapter 3 (notebooks/03_deeplift.ipynb): fresh random inputs and networks each run.

The references below are written out in plain torch, independently of the package's ``deeplift``.
"""
import pytest
import torch

from xai_course import models
from xai_course.grading.checks import assert_close, call, check_tensor, fresh_seed, random_mlp


# --- Exercise 3.1: deeplift_rescale_dense(weights, biases, x, x_ref, target) -> (D,) ---------------------
def _derivative(activation, x):
    with torch.enable_grad():
        z = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(activation(z).sum(), z)
    return grad


def _reference_rescale(x, x_ref, activation=torch.relu, eps=1e-6):
    delta = x - x_ref
    safe = torch.where(delta.abs() < eps, torch.ones_like(delta), delta)
    ratio = (activation(x) - activation(x_ref)) / safe
    return torch.where(delta.abs() < eps, _derivative(activation, x), ratio)


def _reference_dense(weights, biases, x, x_ref, target):
    a, a_ref, pre = x, x_ref, []
    for l, (w, b) in enumerate(zip(weights, biases)):
        z, z_ref = w @ a + b, w @ a_ref + b
        pre.append((z, z_ref))
        a, a_ref = (torch.relu(z), torch.relu(z_ref)) if l < len(weights) - 1 else (z, z_ref)
    m = torch.zeros_like(pre[-1][0])
    m[target] = 1.0
    for l in range(len(weights) - 1, -1, -1):
        m = weights[l].T @ m                                 # multipliers of layer l's inputs
        if l > 0:
            z, z_ref = pre[l - 1]
            m = m * _reference_rescale(z, z_ref, torch.relu)
    return (x - x_ref) * m


def _random_network(sizes):
    weights = [torch.randn(n_out, n_in) / n_in**0.5 for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    biases = [0.5 * torch.randn(n_out) for n_out in sizes[1:]]
    return weights, biases


def _output(weights, biases, x):
    a = x
    for l, (w, b) in enumerate(zip(weights, biases)):
        a = w @ a + b
        a = torch.relu(a) if l < len(weights) - 1 else a
    return a


def _check_dense(submission, weights, biases, x, x_ref, target, what):
    expected = _reference_dense(weights, biases, x, x_ref, target)
    got = assert_close(call(submission.deeplift_rescale_dense, weights, biases, x, x_ref, target), expected,
                       f"deeplift_rescale_dense ({what}, target {target})", atol=1e-5 + 1e-4 * float(expected.abs().max()))
    delta = float(_output(weights, biases, x)[target] - _output(weights, biases, x_ref)[target])
    total = float(got.detach().sum())
    assert abs(total - delta) < 1e-4 * (1 + abs(delta)), \
        f"({what}) your contributions sum to {total:.6f}, but the output changed by {delta:.6f}"


@pytest.mark.exercise("03.1", points=3, functions=["deeplift_rescale_dense"])
def test_deeplift_rescale_dense_on_the_saturating_toy(submission):
    fresh_seed()
    weights, biases = [torch.tensor([[-1.0, -1.0]]), torch.tensor([[-1.0]])], [torch.tensor([1.0]), torch.tensor([1.0])]
    x = torch.tensor([1.0, 1.0])
    assert_close(call(submission.deeplift_rescale_dense, weights, biases, x, torch.zeros(2), 0), torch.tensor([0.5, 0.5]),
                 "deeplift_rescale_dense on y = 1 - ReLU(1 - i1 - i2) at (1, 1), reference (0, 0)")
    x = torch.rand(2) + 0.6                                  # above the kink: C_k = i_k / (i1 + i2)
    assert_close(call(submission.deeplift_rescale_dense, weights, biases, x, torch.zeros(2), 0), x / x.sum(),
                 f"deeplift_rescale_dense on the saturating toy at {x.tolist()}")


@pytest.mark.exercise("03.1", points=3, functions=["deeplift_rescale_dense"])
def test_deeplift_rescale_dense_on_random_networks(submission):
    fresh_seed()
    for depth in (1, 2, 3):
        d, k = int(torch.randint(2, 8, ())), int(torch.randint(1, 5, ()))
        sizes = [d] + [int(torch.randint(3, 10, ())) for _ in range(depth)] + [k]
        weights, biases = _random_network(sizes)
        x, x_ref = torch.randn(d), torch.randn(d) if depth != 2 else torch.zeros(d)
        _check_dense(submission, weights, biases, x, x_ref, int(torch.randint(0, k, ())), f"layer sizes {sizes}")


@pytest.mark.exercise("03.1", points=3, functions=["deeplift_rescale_dense"])
def test_deeplift_rescale_dense_when_a_hidden_unit_does_not_change(submission):
    fresh_seed()
    # hidden unit 0 sees x1 - x2, which is the same at the input and at the reference: Delta z = 0 exactly,
    # so its multiplier is the ReLU's derivative at z (here z > 0: 1); its inputs still get contributions.
    weights = [torch.tensor([[1.0, -1.0, 0.0], [0.5, 0.25, -1.0]]), torch.tensor([[2.0, -1.0], [1.0, 1.0]])]
    biases = [torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.25])]
    x, x_ref = torch.tensor([1.5, 0.5, -0.5]), torch.tensor([1.0, 0.0, 0.5])
    for target in (0, 1):
        _check_dense(submission, weights, biases, x, x_ref, target, "a hidden unit with Delta z = 0")
    weights, biases = _random_network([4, 6, 6, 3])
    x = torch.randn(4)
    expected = torch.zeros(4)
    assert_close(call(submission.deeplift_rescale_dense, weights, biases, x, x.clone(), 1), expected,
                 "deeplift_rescale_dense with x_ref == x (nothing changed, so nothing to attribute)")


# --- Exercise 3.2: reveal_cancel_multipliers(z_ref, delta_plus, delta_minus, activation) -----------------
def _reference_reveal_cancel(z_ref, dp, dm, activation=torch.relu, eps=1e-6):
    f = activation
    dy_plus = 0.5 * (f(z_ref + dp) - f(z_ref)) + 0.5 * (f(z_ref + dm + dp) - f(z_ref + dm))
    dy_minus = 0.5 * (f(z_ref + dm) - f(z_ref)) + 0.5 * (f(z_ref + dp + dm) - f(z_ref + dp))

    def ratio(dy, dx):
        small = dx.abs() < eps
        return torch.where(small, torch.zeros_like(dx), dy / torch.where(small, torch.ones_like(dx), dx))

    return ratio(dy_plus, dp), ratio(dy_minus, dm)


def _check_reveal_cancel(submission, z_ref, dp, dm, activation, what):
    got = call(submission.reveal_cancel_multipliers, z_ref, dp, dm, activation)
    assert isinstance(got, (tuple, list)) and len(got) == 2, \
        f"reveal_cancel_multipliers must return a pair (m_plus, m_minus), got {type(got).__name__}"
    expected = _reference_reveal_cancel(z_ref, dp, dm, activation)
    for name, g, e in zip(("m_plus", "m_minus"), got, expected):
        assert_close(g, e, f"{name} of reveal_cancel_multipliers ({what})", atol=1e-4)
    # the two parts add up to the neuron's whole change: m+ dz+ + m- dz- = f(z_ref + dz+ + dz-) - f(z_ref)
    total = got[0].detach() * dp + got[1].detach() * dm
    change = activation(z_ref + dp + dm) - activation(z_ref)
    assert torch.allclose(total, change, atol=1e-4), \
        f"({what}) m_plus * delta_plus + m_minus * delta_minus should equal the change of the neuron's output"


@pytest.mark.exercise("03.2", points=2, functions=["reveal_cancel_multipliers"])
def test_reveal_cancel_on_the_min_network(submission):
    fresh_seed()
    # h = ReLU(i1 - i2) at reference 0: delta_plus = i1, delta_minus = -i2. For i1 > i2 > 0 the paper's
    # answer is m+ = 1 - i2 / (2 i1), m- = 1/2, which splits min(i1, i2) = i2 evenly between i1 and i2.
    i2 = torch.rand(6) + 0.1
    i1 = i2 + torch.rand(6) + 0.1
    got = call(submission.reveal_cancel_multipliers, torch.zeros(6), i1, -i2, torch.relu)
    assert isinstance(got, (tuple, list)) and len(got) == 2, "reveal_cancel_multipliers must return (m_plus, m_minus)"
    assert_close(got[0], 1 - i2 / (2 * i1), "m_plus on the min network (i1 > i2 > 0)")
    assert_close(got[1], torch.full((6,), 0.5), "m_minus on the min network (i1 > i2 > 0)")


@pytest.mark.exercise("03.2", points=2, functions=["reveal_cancel_multipliers"])
def test_reveal_cancel_on_random_neurons(submission):
    fresh_seed()
    n = int(torch.randint(5, 40, ()))
    z_ref = 2 * torch.randn(n)
    dp, dm = 3 * torch.rand(n) + 1e-2, -3 * torch.rand(n) - 1e-2
    _check_reveal_cancel(submission, z_ref, dp, dm, torch.relu, "ReLU, random neurons")
    _check_reveal_cancel(submission, z_ref.view(n, 1), dp.view(n, 1), dm.view(n, 1), torch.tanh, "tanh, shape (n, 1)")


@pytest.mark.exercise("03.2", points=2, functions=["reveal_cancel_multipliers"])
def test_reveal_cancel_when_one_side_is_empty(submission):
    fresh_seed()
    n = 8
    z_ref = torch.randn(n)
    dp, dm = 2 * torch.rand(n) + 0.1, -2 * torch.rand(n) - 0.1
    dp[: n // 2] = 0.0                                      # no positive contributions: m+ multiplies nothing
    dm[n // 2:] = 0.0                                       # no negative contributions
    got = call(submission.reveal_cancel_multipliers, z_ref, dp, dm, torch.relu)
    assert isinstance(got, (tuple, list)) and len(got) == 2, "reveal_cancel_multipliers must return (m_plus, m_minus)"
    for g in got:
        check_tensor(g, (n,), "a multiplier where one of delta_plus, delta_minus is 0 (return 0 there, not NaN)")
    _check_reveal_cancel(submission, z_ref, dp, dm, torch.relu, "one of delta_plus, delta_minus is 0")



# --- Exercise 3.3: shapley_values(model, x, x_ref, target) -> (D,), graded by the Shapley axioms -------
def _delta(model, x, x_ref, target):
    with torch.no_grad():
        return float(model(torch.stack([x, x_ref]))[:, target].diff().neg())


def _check_efficiency(submission, model, x, x_ref, target, what):
    got = call(submission.shapley_values, model, x, x_ref, target)
    check_tensor(got, x.shape, f"shapley_values(model, x of shape {tuple(x.shape)}, x_ref, target)")
    delta = _delta(model, x, x_ref, target)
    assert abs(float(got.sum()) - delta) < 1e-4 * (1 + abs(delta)), (
        f"{what}: efficiency: the values must add up to f(x) - f(x_ref) = {delta:.5f}, "
        f"yours add up to {float(got.sum()):.5f}")
    return got


@pytest.mark.exercise("03.3", points=3, functions=["shapley_values"])
def test_shapley_values_on_the_toy_by_hand(submission):
    fresh_seed()
    toy = models.Saturating()
    for point, by_hand in (([1.0, 1.0], [0.5, 0.5]), ([1.4, 0.2], [0.9, 0.1]), ([0.2, 0.3], [0.2, 0.3])):
        got = _check_efficiency(submission, toy, torch.tensor(point), torch.zeros(2), 0, f"toy at {point}")
        assert_close(got, torch.tensor(by_hand), f"shapley_values of the saturating toy at {point}")


@pytest.mark.exercise("03.3", points=3, functions=["shapley_values"])
def test_shapley_values_of_an_affine_model_and_a_null_player(submission):
    fresh_seed()
    d = int(torch.randint(3, 8, ()))
    model = random_mlp(d, 4, 2, depth=0)          # one Linear layer: affine
    with torch.no_grad():
        model[0].weight[:, 0] = 0.0               # input 0 is ignored
    x, x_ref = torch.randn(d), torch.randn(d)
    got = _check_efficiency(submission, model, x, x_ref, 1, "affine model")
    expected = model[0].weight[1].detach() * (x - x_ref)
    assert_close(got, expected, "shapley_values of an affine model (phi_i = w_i (x_i - x_ref_i))")


@pytest.mark.exercise("03.3", points=3, functions=["shapley_values"])
def test_shapley_values_of_a_random_network_are_efficient_and_symmetric(submission):
    fresh_seed()
    d = int(torch.randint(4, 8, ()))
    model = random_mlp(d, 12, 3)
    with torch.no_grad():
        model[0].weight[:, 1] = model[0].weight[:, 0]   # inputs 0 and 1 play the same role
        model[0].weight[:, d - 1] = 0.0                 # the last input is ignored
    x, x_ref = torch.randn(d), torch.randn(d)
    x[1], x_ref[1] = x[0], x_ref[0]
    target = int(torch.randint(0, 3, ()))
    got = _check_efficiency(submission, model, x, x_ref, target, "random network")
    assert abs(float(got[0] - got[1])) < 1e-5, (
        f"symmetry: inputs 0 and 1 play the same role and must get the same value, got {got[:2].tolist()}")
    assert abs(float(got[d - 1])) < 1e-5, f"null player: the ignored last input must get 0, got {float(got[d - 1])}"
