"""Grading tests of chapter 13 (notebooks/13_fullgrad.ipynb): fresh random inputs and models each run."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xai_course.grading.checks import assert_close, call, check_tensor, fresh_seed, random_cnn, random_mlp


def _random_batchnorm(channels: int, affine: bool = True, one_d: bool = False) -> nn.Module:
    """A BatchNorm layer in eval mode with random running statistics (and random affine parameters)."""
    bn = (nn.BatchNorm1d if one_d else nn.BatchNorm2d)(channels, affine=affine, eps=float(10 ** -torch.randint(2, 6, ())))
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(channels))
        bn.running_var.copy_(torch.rand(channels) * 2 + 0.1)
        if affine:
            bn.weight.copy_(torch.randn(channels))
            bn.bias.copy_(torch.randn(channels))
    return bn.eval()


# --- Exercise 13.1: scale_biases(model, lam) -> a new network, graded by homogeneity ---------------------
def _random_bn_network():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), _random_batchnorm(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 5, 3, padding=1, bias=False), _random_batchnorm(5, affine=False), nn.ReLU(),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(20, 3))
    return model.eval()


def _check_homogeneous(submission, model, x, lam, what):
    scaled = call(submission.scale_biases, model, lam)
    assert isinstance(scaled, nn.Module), f"scale_biases must return a network, not {type(scaled).__name__}"
    with torch.no_grad():
        got, want = scaled.eval()(lam * x), lam * model(x)
    assert_close(got, want, f"{what}: new(lam * x) against lam * model(x), lam = {lam:.3g}", atol=1e-4)


@pytest.mark.exercise("13.1", points=2, functions=["scale_biases"])
def test_scale_biases_of_a_random_mlp(submission):
    fresh_seed()
    d = int(torch.randint(3, 9, ()))
    model, x = random_mlp(d, 12, 3), torch.randn(5, d)
    for lam in (float(0.2 + 3 * torch.rand(())), 1.0):
        _check_homogeneous(submission, model, x, lam, "random MLP")


@pytest.mark.exercise("13.1", points=2, functions=["scale_biases"])
def test_scale_biases_of_a_cnn_with_batchnorm(submission):
    fresh_seed()
    model, x = _random_bn_network(), torch.rand(3, 3, 8, 8)
    for lam in (float(0.2 + 3 * torch.rand(())), 1.0):
        _check_homogeneous(submission, model, x, lam, "CNN with BatchNorm")


# --- Exercise 13.2: grad_cam_map(activations, gradients) -> (N, 1, h, w) -----------------------------------
def _reference_grad_cam(activations, gradients):
    weights = gradients.mean((2, 3), keepdim=True)
    return torch.relu((weights * activations).sum(1, keepdim=True))


def _check_grad_cam(submission, activations, gradients, what):
    assert_close(call(submission.grad_cam_map, activations, gradients), _reference_grad_cam(activations, gradients),
                 f"grad_cam_map({what})")


@pytest.mark.exercise("13.2", points=2, functions=["grad_cam_map"])
def test_grad_cam_map_on_random_tensors(submission):
    fresh_seed()
    n, k, h, w = (int(torch.randint(1, 5, ())), int(torch.randint(1, 9, ())), int(torch.randint(2, 9, ())),
                  int(torch.randint(2, 9, ())))
    _check_grad_cam(submission, torch.rand(n, k, h, w), torch.randn(n, k, h, w), f"activations ({n}, {k}, {h}, {w})")


@pytest.mark.exercise("13.2", points=2, functions=["grad_cam_map"])
def test_grad_cam_map_of_a_real_layer(submission):
    fresh_seed()
    model = random_cnn(3, 4)
    x, target = torch.rand(3, 3, 12, 12), torch.randint(0, 4, (3,))
    with torch.enable_grad():
        activations = model[:5](x)                                   # after the second convolution's ReLU
        score = model[5:](activations).gather(1, target[:, None]).sum()
        (gradients,) = torch.autograd.grad(score, activations)
    _check_grad_cam(submission, activations.detach(), gradients, "the last ReLU of a random CNN")
    negative = -torch.ones(2, 3, 4, 4)                               # every weighted sum negative: the map is 0
    _check_grad_cam(submission, torch.rand(2, 3, 4, 4), negative, "gradients that are all negative")


# --- Exercise 13.3: dense_full_gradient(weights, biases, x, target) -> (input_term, bias_terms) --------
def _net_from(weights, biases):
    layers = []
    for w, b in zip(weights, biases):
        linear = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            linear.weight.copy_(w)
            linear.bias.copy_(b)
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


def _reference_dense_full_gradient(weights, biases, x, target):
    net = _net_from(weights, biases)
    outputs, h = [], x[None].clone().requires_grad_(True)
    start = h
    for layer in net:
        h = layer(h)
        if isinstance(layer, nn.Linear):
            outputs.append(h)
    grads = torch.autograd.grad(h[0, target], [start, *outputs])
    return (x * grads[0][0]).detach(), [(g[0] * b).detach() for g, b in zip(grads[1:], biases)]


def _check_dense_full_gradient(submission, weights, biases, x, target, what):
    got = call(submission.dense_full_gradient, weights, biases, x, target)
    assert isinstance(got, (tuple, list)) and len(got) == 2, "return the pair (input_term, bias_terms)"
    input_term, bias_terms = got
    ref_input, ref_bias = _reference_dense_full_gradient(weights, biases, x, target)
    assert_close(input_term, ref_input, f"{what}: input_term")
    assert isinstance(bias_terms, (tuple, list)) and len(bias_terms) == len(ref_bias), (
        f"{what}: bias_terms must be a list with one tensor per layer ({len(ref_bias)})")
    for l, (mine, ref) in enumerate(zip(bias_terms, ref_bias)):
        assert_close(mine, ref, f"{what}: bias term of layer {l}")
    total = float(input_term.sum()) + sum(float(t.sum()) for t in bias_terms)
    with torch.no_grad():
        logit = float(_net_from(weights, biases)(x[None])[0, target])
    assert abs(total - logit) < 1e-4 * (1 + abs(logit)), f"{what}: the terms sum to {total:.5f}, not f(x) = {logit:.5f}"


@pytest.mark.exercise("13.3", points=3, functions=["dense_full_gradient"])
def test_dense_full_gradient_of_the_saturating_toy(submission):
    fresh_seed()
    weights, biases = [torch.tensor([[-1.0, -1.0]]), torch.tensor([[-1.0]])], [torch.tensor([1.0]), torch.tensor([1.0])]
    for point in (torch.rand(2) * 0.45, 0.55 + torch.rand(2)):      # below and above the kink
        _check_dense_full_gradient(submission, weights, biases, point, 0, f"toy at {point.tolist()}")


@pytest.mark.exercise("13.3", points=3, functions=["dense_full_gradient"])
def test_dense_full_gradient_of_random_networks(submission):
    fresh_seed()
    for depth in (1, 2, 3):
        sizes = [int(torch.randint(2, 8, ()))] + [int(torch.randint(3, 10, ())) for _ in range(depth)] + [3]
        weights = [torch.randn(o, i) for i, o in zip(sizes[:-1], sizes[1:])]
        biases = [torch.randn(o) for o in sizes[1:]]
        _check_dense_full_gradient(submission, weights, biases, torch.randn(sizes[0]), int(torch.randint(0, 3, ())),
                                   f"layer sizes {sizes}")
