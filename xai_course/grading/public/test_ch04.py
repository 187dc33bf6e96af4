"""Grading tests of chapter 4 (notebooks/04_integrated_gradients.ipynb): fresh random inputs and models each run."""
import numpy as np
import pytest
import torch
from torch import nn

from xai_course.grading.checks import assert_close, call, fresh_seed, random_cnn, random_mlp, reference_gradient

RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


# --- Exercise 4.1: path_quadrature(method, steps) -> (alphas, weights) ------------------------------------
def _reference_quadrature(method, m):
    k = np.arange(m, dtype=np.float64)
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(m)
        alphas, weights = (nodes + 1) / 2, weights / 2
    elif method == "riemann_trapezoid":
        alphas, weights = k / (m - 1), np.full(m, 1.0 / (m - 1))
        weights[[0, -1]] /= 2
    else:
        offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
        alphas, weights = (k + offset) / m, np.full(m, 1.0 / m)
    return torch.from_numpy(alphas), torch.from_numpy(weights)


def _check_quadrature(submission, method, m):
    result = call(submission.path_quadrature, method, m)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise AssertionError(f"path_quadrature({method!r}, {m}) must return a tuple (alphas, weights), "
                             f"got {type(result).__name__}")
    alphas, weights = _reference_quadrature(method, m)
    assert_close(result[0], alphas, f"the points alphas of path_quadrature({method!r}, {m})", rtol=1e-6, atol=1e-7)
    assert_close(result[1], weights, f"the weights of path_quadrature({method!r}, {m})", rtol=1e-6, atol=1e-7)


@pytest.mark.exercise("04.1", points=2, functions=["path_quadrature"])
def test_path_quadrature_riemann_sums(submission):
    fresh_seed()
    for method in ("riemann_left", "riemann_right", "riemann_middle"):
        for m in (2, int(torch.randint(3, 50, ()))):
            _check_quadrature(submission, method, m)


@pytest.mark.exercise("04.1", points=2, functions=["path_quadrature"])
def test_path_quadrature_trapezoid_and_gauss_legendre(submission):
    fresh_seed()
    for method in ("riemann_trapezoid", "gausslegendre"):
        for m in (2, 3, int(torch.randint(4, 50, ()))):
            _check_quadrature(submission, method, m)
    m = int(torch.randint(2, 12, ()))
    alphas, weights = call(submission.path_quadrature, "gausslegendre", m)
    exact = float((torch.as_tensor(weights).double() * torch.as_tensor(alphas).double() ** (2 * m - 1)).sum())
    assert abs(exact - 1 / (2 * m)) < 1e-9, \
        f"Gauss-Legendre with {m} points must integrate alpha^{2 * m - 1} exactly (1/{2 * m}), got {exact:.10f}"


@pytest.mark.exercise("04.1", points=2, functions=["path_quadrature"])
def test_path_quadrature_rejects_unknown_methods(submission):
    fresh_seed()
    for name in ("simpson", "riemann", "gauss"):
        try:
            call(submission.path_quadrature, name, 8)
        except ValueError:
            continue
        except NotImplementedError:
            raise
        except Exception as error:  # noqa: BLE001 - a wrong exception type gets a clear message
            raise AssertionError(f"path_quadrature({name!r}, 8) must raise ValueError, it raised "
                                 f"{type(error).__name__}: {error}") from None
        raise AssertionError(f"path_quadrature({name!r}, 8) must raise ValueError for an unknown method name")


# --- Exercise 4.2: ig_attribution(model, inputs, target, baseline, alphas, weights) -> (N, *S) ----------
def _reference_ig(model, inputs, target, baseline, alphas, weights):
    n = inputs.shape[0]
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1).expand(n)
    x_ref = baseline.expand_as(inputs)
    total = torch.zeros_like(inputs)
    for a, w in zip(alphas.tolist(), weights.tolist()):
        total += w * reference_gradient(model, x_ref + a * (inputs - x_ref), target)
    return (inputs - x_ref) * total


def _random_rule(m):
    alphas, _ = torch.sort(torch.rand(m, dtype=torch.float64))
    return alphas, torch.rand(m, dtype=torch.float64) / m


def _check_ig(submission, model, inputs, target, baseline, alphas, weights, what):
    expected = _reference_ig(model, inputs, target, baseline, alphas, weights)
    assert_close(call(submission.ig_attribution, model, inputs, target, baseline, alphas, weights), expected,
                 f"ig_attribution ({what}, {len(alphas)} points)", rtol=1e-4,
                 atol=1e-6 + 1e-4 * float(expected.abs().max()))


@pytest.mark.exercise("04.2", points=3, functions=["ig_attribution"])
def test_ig_attribution_on_a_random_mlp_with_a_shared_baseline(submission):
    fresh_seed()
    n, d, k = int(torch.randint(2, 7, ())), int(torch.randint(3, 10, ())), 4
    model = random_mlp(d, 16, k, activation=nn.Tanh)
    alphas, weights = _reference_quadrature("gausslegendre", int(torch.randint(2, 20, ())))
    _check_ig(submission, model, torch.randn(n, d), int(torch.randint(0, k, ())), torch.randn(d), alphas, weights,
              "tanh MLP, one baseline for all examples, int target")


@pytest.mark.exercise("04.2", points=3, functions=["ig_attribution"])
def test_ig_attribution_on_a_random_cnn_with_per_example_baselines(submission):
    fresh_seed()
    n = int(torch.randint(2, 5, ()))
    model = random_cnn(3, 4)
    alphas, weights = _random_rule(int(torch.randint(2, 12, ())))
    _check_ig(submission, model, torch.rand(n, 3, 8, 8), torch.randint(0, 4, (n,)), 0.3 * torch.rand(n, 3, 8, 8),
              alphas, weights, "CNN, a baseline per example, random points and weights")


@pytest.mark.exercise("04.2", points=3, functions=["ig_attribution"])
def test_ig_attribution_under_no_grad_is_complete_on_a_smooth_model(submission):
    fresh_seed()
    n, d = 3, int(torch.randint(3, 8, ()))
    model = random_mlp(d, 12, 3, activation=nn.Tanh)
    inputs, baseline, target = torch.randn(n, d), torch.zeros(d), torch.randint(0, 3, (n,))
    alphas, weights = _reference_quadrature("gausslegendre", 16)
    with torch.no_grad():
        got = call(submission.ig_attribution, model, inputs, target, baseline, alphas, weights)
        change = (model(inputs) - model(baseline.expand_as(inputs))).gather(1, target[:, None])[:, 0]
    assert_close(got, _reference_ig(model, inputs, target, baseline, alphas, weights),
                 "ig_attribution under torch.no_grad()")
    assert_close(got.flatten(1).sum(1), change, "the sum of ig_attribution (completeness, 16 Gauss-Legendre points)",
                 rtol=1e-3, atol=1e-4)


# --- Exercise 4.3: gaussian_blur(images, sigma) -> (N, C, H, W) ------------------------------------------
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


@pytest.mark.exercise("04.3", points=2, functions=["gaussian_blur"])
def test_gaussian_blur_on_random_images(submission):
    fresh_seed()
    for _ in range(3):
        shape = (2, int(torch.randint(1, 4, ())), int(torch.randint(6, 24, ())), int(torch.randint(6, 24, ())))
        images, sigma = torch.rand(shape), float(0.3 + 2.5 * torch.rand(()))
        assert_close(call(submission.gaussian_blur, images, sigma), _reference_blur(images, sigma),
                     f"gaussian_blur(images of shape {shape}, sigma={sigma:.3f})")


@pytest.mark.exercise("04.3", points=2, functions=["gaussian_blur"])
def test_gaussian_blur_with_a_radius_clipped_to_the_image(submission):
    fresh_seed()
    images = torch.rand(1, 3, 7, 9)
    for sigma in (4.0, 0.1):           # radius 12 -> clipped to 6; radius 0 -> raised to 1
        assert_close(call(submission.gaussian_blur, images, sigma), _reference_blur(images, sigma),
                     f"gaussian_blur(images of shape (1, 3, 7, 9), sigma={sigma})")
    constant = torch.full((2, 2, 8, 8), float(torch.rand(())))
    assert_close(call(submission.gaussian_blur, constant, 1.5), constant, "gaussian_blur of a constant image")


# --- Exercise 4.4: fold_batchnorm(conv, bn) -> nn.Conv2d ---------------------------------------------------
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


@pytest.mark.exercise("04.4", points=2, functions=["fold_batchnorm"])
def test_fold_batchnorm_of_a_convolution_without_bias(submission):
    fresh_seed()
    conv, bn = _random_conv_bn(bias=False, stride=1)
    _check_fold(submission, conv, bn, "no conv bias, stride 1")


@pytest.mark.exercise("04.4", points=2, functions=["fold_batchnorm"])
def test_fold_batchnorm_of_a_strided_convolution_with_bias(submission):
    fresh_seed()
    conv, bn = _random_conv_bn(bias=True, stride=2)
    _check_fold(submission, conv, bn, "conv with bias, stride 2")
    conv, bn = _random_conv_bn(bias=True, stride=1, groups=2)
    _check_fold(submission, conv, bn, "grouped conv with bias")
