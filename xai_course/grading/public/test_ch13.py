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


# --- Exercise 13.1: batchnorm_effective_bias(bn) -> (C,), beta - gamma * mu / sqrt(var + eps) -------------
def _reference_effective_bias(bn):
    gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_mean)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
    return (beta - gamma * bn.running_mean / torch.sqrt(bn.running_var + bn.eps)).detach()


def _check_effective_bias(submission, bn, what):
    assert_close(call(submission.batchnorm_effective_bias, bn), _reference_effective_bias(bn),
                 f"batchnorm_effective_bias({what})")


@pytest.mark.exercise("13.1", points=2, functions=["batchnorm_effective_bias"])
def test_effective_bias_of_a_random_batchnorm(submission):
    fresh_seed()
    _check_effective_bias(submission, _random_batchnorm(int(torch.randint(1, 17, ()))), "a random BatchNorm2d")


@pytest.mark.exercise("13.1", points=2, functions=["batchnorm_effective_bias"])
def test_effective_bias_makes_batchnorm_affine(submission):
    fresh_seed()
    bn = _random_batchnorm(int(torch.randint(2, 9, ())))
    bias = check_tensor(call(submission.batchnorm_effective_bias, bn), (bn.num_features,),
                        "batchnorm_effective_bias(bn)").detach()
    # eval-mode BatchNorm is z -> scale * z + bias: at z = 0 it outputs the effective bias
    with torch.no_grad():
        at_zero = bn(torch.zeros(2, bn.num_features, 3, 3))[0, :, 1, 1]
    assert_close(bias, at_zero, "batchnorm_effective_bias(bn), compared with bn(zeros) in eval mode")


@pytest.mark.exercise("13.1", points=2, functions=["batchnorm_effective_bias"])
def test_effective_bias_without_affine_parameters_and_in_1d(submission):
    fresh_seed()
    _check_effective_bias(submission, _random_batchnorm(5, affine=False), "BatchNorm2d(affine=False): weight and bias are None")
    _check_effective_bias(submission, _random_batchnorm(7, one_d=True), "a BatchNorm1d")


# --- Exercise 13.2: full_gradient(model, inputs, target) -> (input term, [bias terms]) ---------------------
def _has_bias(layer):
    return isinstance(layer, nn.modules.batchnorm._BatchNorm) or (
        isinstance(layer, (nn.Linear, nn.Conv2d)) and layer.bias is not None)


def _bias_of(layer):
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        return _reference_effective_bias(layer)
    return layer.bias.detach()


def _reference_full_gradient(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    kept, biases = [], []
    with torch.enable_grad():
        h = x
        for layer in model:
            h = layer(h)
            if _has_bias(layer):
                kept.append(h)
                biases.append(_bias_of(layer))
        score = h.gather(1, target[:, None]).sum()
        grads = torch.autograd.grad(score, [x] + kept)
    bias_terms = [g * b.view(1, -1, *[1] * (g.ndim - 2)) for g, b in zip(grads[1:], biases)]
    return (grads[0] * inputs).detach(), [t.detach() for t in bias_terms], h.detach().gather(1, target[:, None])[:, 0]


def _check_full_gradient(submission, model, inputs, target, what):
    expected_input, expected_bias, logits = _reference_full_gradient(model, inputs, target)
    got = call(submission.full_gradient, model, inputs, target)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise AssertionError(f"full_gradient must return a pair (input_term, bias_terms), got {type(got).__name__}"
                             + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else ""))
    input_term, bias_terms = got
    assert_close(input_term, expected_input, f"full_gradient({what})[0], the input term x * df/dx")
    if not isinstance(bias_terms, (tuple, list)):
        raise AssertionError(f"full_gradient(...)[1] must be a list of tensors, got {type(bias_terms).__name__}")
    if len(bias_terms) != len(expected_bias):
        raise AssertionError(f"full_gradient({what})[1] has {len(bias_terms)} bias terms, expected "
                             f"{len(expected_bias)}: one per layer with a bias, in the order of the layers")
    for k, (mine, want) in enumerate(zip(bias_terms, expected_bias)):
        assert_close(mine, want, f"full_gradient({what})[1][{k}], the bias term of the {k + 1}-th layer with a bias")
    total = input_term.detach().flatten(1).sum(1) + sum(t.detach().flatten(1).sum(1) for t in bias_terms)
    assert_close(total, logits, f"completeness: the sum of all terms of full_gradient({what})", rtol=1e-4, atol=1e-4)


@pytest.mark.exercise("13.2", points=3, functions=["full_gradient"])
def test_full_gradient_of_a_random_mlp(submission):
    fresh_seed()
    d, k, n = int(torch.randint(3, 10, ())), int(torch.randint(2, 6, ())), int(torch.randint(1, 7, ()))
    _check_full_gradient(submission, random_mlp(d, 12, k), torch.randn(n, d), torch.randint(0, k, (n,)),
                         f"a random MLP, inputs ({n}, {d})")


@pytest.mark.exercise("13.2", points=3, functions=["full_gradient"])
def test_full_gradient_of_a_random_cnn(submission):
    fresh_seed()
    k, n = int(torch.randint(2, 6, ())), int(torch.randint(1, 5, ()))
    _check_full_gradient(submission, random_cnn(3, k), torch.rand(n, 3, 8, 8), torch.randint(0, k, (n,)),
                         f"a random CNN with max-pooling, inputs ({n}, 3, 8, 8)")


@pytest.mark.exercise("13.2", points=3, functions=["full_gradient"])
def test_full_gradient_with_batchnorm_and_convolutions_without_bias(submission):
    fresh_seed()
    k, n = 3, int(torch.randint(1, 5, ()))
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), _random_batchnorm(4), nn.ReLU(),
                          nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                          nn.Conv2d(6, 5, 1, bias=False), _random_batchnorm(5), nn.ReLU(),
                          nn.Flatten(), nn.Linear(5 * 2 * 2, k)).eval()
    _check_full_gradient(submission, model, torch.randn(n, 2, 8, 8), torch.randint(0, k, (n,)),
                         "a CNN with BatchNorm2d after convolutions without bias")


# --- Exercise 13.3: fullgrad_saliency(input_term, bias_terms) -> (N, 1, H, W) ------------------------------
def _rescale(maps):
    """(m - min) / (max - min + 1e-7) over the last two dimensions: each map to [0, 1]."""
    flat = maps.flatten(-2)
    low, high = flat.min(-1, keepdim=True).values, flat.max(-1, keepdim=True).values
    return ((flat - low) / (high - low + 1e-7)).view(maps.shape)


def _psi(term, size):
    """psi of every channel map: |.|, rescaled to [0, 1], bilinearly resized to ``size``; summed over channels."""
    maps = _rescale(term.abs())
    if tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    return maps.sum(1, keepdim=True)


def _reference_fullgrad(input_term, bias_terms):
    size = tuple(input_term.shape[-2:])
    total = _psi(input_term, size)
    for term in bias_terms:
        if term.ndim == 4:
            total = total + _psi(term, size)
    return _rescale(total)


def _check_fullgrad(submission, input_term, bias_terms, what):
    expected = _reference_fullgrad(input_term, bias_terms)
    assert_close(call(submission.fullgrad_saliency, input_term, bias_terms), expected, f"fullgrad_saliency({what})",
                 rtol=1e-4, atol=1e-4)


def _terms(n, channels, sides, size, scale=1.0):
    return [scale * torch.randn(n, c, s, s) for c, s in zip(channels, sides)], torch.randn(n, 3, size, size)


@pytest.mark.exercise("13.3", points=3, functions=["fullgrad_saliency"])
def test_fullgrad_saliency_of_one_layer(submission):
    fresh_seed()
    n = int(torch.randint(1, 5, ()))
    input_term = torch.randn(n, 3, 8, 8)
    _check_fullgrad(submission, input_term, [], "input term only, no bias terms")
    _check_fullgrad(submission, input_term, [torch.randn(n, 4, 8, 8)], "one bias term at the input's resolution")


@pytest.mark.exercise("13.3", points=3, functions=["fullgrad_saliency"])
def test_fullgrad_saliency_rescales_and_upsamples_each_layer(submission):
    fresh_seed()
    n = int(torch.randint(1, 5, ()))
    # layers of very different sizes and scales: each is rescaled to [0, 1] before it is added
    bias_terms, input_term = _terms(n, [4, 6, 8], [16, 8, 4], 16)
    bias_terms = [t * 10.0 ** float(torch.randint(-2, 3, ())) for t in bias_terms]
    bias_terms[0][:, 1] = 0.0                 # a dead channel: its map is constant, psi gives zeros
    _check_fullgrad(submission, input_term, bias_terms, "three bias terms at 16x16, 8x8 and 4x4 (one channel "
                                                        "all zeros), input 16x16")


@pytest.mark.exercise("13.3", points=3, functions=["fullgrad_saliency"])
def test_fullgrad_saliency_skips_non_spatial_terms(submission):
    fresh_seed()
    n = int(torch.randint(1, 4, ()))
    bias_terms, input_term = _terms(n, [5, 7], [12, 6], 12, scale=0.01)
    bias_terms.insert(1, torch.randn(n, 9))   # a Linear layer's term has no spatial layout: leave it out
    bias_terms.append(torch.randn(n, 3))
    _check_fullgrad(submission, input_term, bias_terms, "with (N, F) terms of Linear layers, which are skipped")


# --- Exercise 13.4: grad_cam_map(activations, gradients) -> (N, 1, h, w) -----------------------------------
def _reference_grad_cam(activations, gradients):
    weights = gradients.mean((2, 3), keepdim=True)
    return torch.relu((weights * activations).sum(1, keepdim=True))


def _check_grad_cam(submission, activations, gradients, what):
    assert_close(call(submission.grad_cam_map, activations, gradients), _reference_grad_cam(activations, gradients),
                 f"grad_cam_map({what})")


@pytest.mark.exercise("13.4", points=2, functions=["grad_cam_map"])
def test_grad_cam_map_on_random_tensors(submission):
    fresh_seed()
    n, k, h, w = (int(torch.randint(1, 5, ())), int(torch.randint(1, 9, ())), int(torch.randint(2, 9, ())),
                  int(torch.randint(2, 9, ())))
    _check_grad_cam(submission, torch.rand(n, k, h, w), torch.randn(n, k, h, w), f"activations ({n}, {k}, {h}, {w})")


@pytest.mark.exercise("13.4", points=2, functions=["grad_cam_map"])
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
