"""Grading tests of chapter 4 (notebooks/04_integrated_gradients.ipynb): fresh random inputs and models each run."""
import numpy as np
import pytest
import torch
from torch import nn

from xai_course.grading.checks import assert_close, call, check_tensor, fresh_seed, random_cnn, random_mlp


# --- Exercise 4.1: neutral_baseline(model, start, target, tolerance), graded by its property ------------
def _check_neutral(submission, model, start, target, tolerance, what):
    got = call(submission.neutral_baseline, model, start, target, tolerance)
    got = check_tensor(got, start.shape, f"neutral_baseline(model, start of shape {tuple(start.shape)}, ...)")
    with torch.no_grad():
        value = float(model(got[None].to(start.dtype))[0, target])
    assert abs(value) <= tolerance * 1.01, (
        f"{what}: the score at your baseline is {value:.3g}, not within {tolerance} of 0")


@pytest.mark.exercise("04.1", points=2, functions=["neutral_baseline"])
def test_neutral_baseline_of_an_affine_model(submission):
    fresh_seed()
    d = int(torch.randint(2, 9, ()))
    model = random_mlp(d, 4, 3, depth=0)
    _check_neutral(submission, model, 3 * torch.randn(d), int(torch.randint(0, 3, ())), 1e-4, "affine model")


@pytest.mark.exercise("04.1", points=2, functions=["neutral_baseline"])
def test_neutral_baseline_of_random_networks(submission):
    fresh_seed()
    d = int(torch.randint(4, 9, ()))
    _check_neutral(submission, random_mlp(d, 16, 3, activation=nn.Tanh), torch.randn(d), 1, 1e-3, "tanh MLP")
    model = random_cnn(3, 4)
    with torch.no_grad():
        model[-1].bias.add_(1.0)                  # a score away from 0 at the start
    _check_neutral(submission, model, torch.rand(3, 8, 8), 2, 1e-3, "random CNN")


# --- Exercise 4.2: gaussian_blur(images, sigma) -> (N, C, H, W) ------------------------------------------
def _reference_blur(images, sigma):
    h, w = images.shape[-2:]
    radius = max(1, min(int(3 * sigma + 0.5), min(h, w) - 1))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-t**2 / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).numpy()
    padded = np.pad(images.double().numpy(), ((0, 0), (0, 0), (radius, radius), (radius, radius)), mode="reflect")
    rows = sum(kernel[j] * padded[..., :, j:j + w] for j in range(2 * radius + 1))
    out = sum(kernel[j] * rows[..., j:j + h, :] for j in range(2 * radius + 1))
    return torch.from_numpy(out).to(images.dtype)


@pytest.mark.exercise("04.2", points=2, functions=["gaussian_blur"])
def test_gaussian_blur_on_random_images(submission):
    fresh_seed()
    for _ in range(3):
        shape = (2, int(torch.randint(1, 4, ())), int(torch.randint(6, 24, ())), int(torch.randint(6, 24, ())))
        images, sigma = torch.rand(shape), float(0.3 + 2.5 * torch.rand(()))
        assert_close(call(submission.gaussian_blur, images, sigma), _reference_blur(images, sigma),
                     f"gaussian_blur(images of shape {shape}, sigma={sigma:.3f})")


@pytest.mark.exercise("04.2", points=2, functions=["gaussian_blur"])
def test_gaussian_blur_with_a_radius_clipped_to_the_image(submission):
    fresh_seed()
    images = torch.rand(1, 3, 7, 9)
    for sigma in (4.0, 0.1):           # radius 12 -> clipped to 6; radius 0 -> raised to 1
        assert_close(call(submission.gaussian_blur, images, sigma), _reference_blur(images, sigma),
                     f"gaussian_blur(images of shape (1, 3, 7, 9), sigma={sigma})")
    constant = torch.full((2, 2, 8, 8), float(torch.rand(())))
    assert_close(call(submission.gaussian_blur, constant, 1.5), constant, "gaussian_blur of a constant image")


# --- Exercise 4.3: fold_batchnorm(conv, bn) -> nn.Conv2d ---------------------------------------------------
def _random_conv_bn(bias, stride, groups=1):
    conv = nn.Conv2d(4, 6, 3, stride=stride, padding=1, bias=bias, groups=groups)
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(6))
        bn.bias.copy_(torch.randn(6))
        bn.running_mean.copy_(torch.randn(6))
        bn.running_var.copy_(0.2 + torch.rand(6))
    bn.eps = float(10 ** -torch.randint(2, 6, ()).item())
    return conv.eval(), bn.eval()


def _check_fold(submission, conv, bn, what):
    folded = call(submission.fold_batchnorm, conv, bn)
    if not isinstance(folded, nn.Conv2d):
        raise AssertionError(f"fold_batchnorm must return an nn.Conv2d, got {type(folded).__name__}")
    if folded is conv:
        raise AssertionError("fold_batchnorm must return a new convolution, not change and return conv")
    x = torch.randn(3, 4, 9, 9)
    with torch.no_grad():
        expected = bn(conv(x))
        got = folded(x)
    assert_close(got, expected, f"fold_batchnorm(conv, bn)(x) against bn(conv(x)) ({what})", rtol=1e-4, atol=1e-4)


@pytest.mark.exercise("04.3", points=2, functions=["fold_batchnorm"])
def test_fold_batchnorm_of_a_convolution_without_bias(submission):
    fresh_seed()
    conv, bn = _random_conv_bn(bias=False, stride=1)
    _check_fold(submission, conv, bn, "no conv bias, stride 1")


@pytest.mark.exercise("04.3", points=2, functions=["fold_batchnorm"])
def test_fold_batchnorm_of_a_strided_convolution_with_bias(submission):
    fresh_seed()
    conv, bn = _random_conv_bn(bias=True, stride=2)
    _check_fold(submission, conv, bn, "conv with bias, stride 2")
    conv, bn = _random_conv_bn(bias=True, stride=1, groups=2)
    _check_fold(submission, conv, bn, "grouped conv with bias")
