"""Grading tests of chapter 7 (notebooks/07_lime.ipynb): fresh random inputs each run."""
import pytest
import torch

from xai_course.grading.checks import assert_close, call, fresh_seed


# --- Exercise 7.1: lime_kernel(z, kernel_width) -> (S,) ------------------------------------------------
def _reference_kernel(z, width):
    k = z.double().sum(1)
    d = torch.where(k > 0, 1 - torch.sqrt(k / z.shape[1]), torch.ones_like(k))
    return torch.exp(-d ** 2 / (2 * width ** 2))


@pytest.mark.exercise("07.1", points=2, functions=["lime_kernel"])
@pytest.mark.parametrize("dtype", ["bool", "float32"])
def test_lime_kernel_on_random_coalitions(submission, dtype):
    fresh_seed()
    z = (torch.rand(int(torch.randint(5, 60, ())), int(torch.randint(2, 20, ()))) < 0.5)
    z[0], z[1] = True, False
    width = float(torch.empty(()).uniform_(0.1, 2.0))
    assert_close(call(submission.lime_kernel, z.to(getattr(torch, dtype)), width), _reference_kernel(z, width),
                 "lime_kernel(z, kernel_width)")


# --- Exercise 7.2: explanation_fit(f, g, weights) -> float ---------------------------------------------
@pytest.mark.exercise("07.2", points=2, functions=["explanation_fit"])
def test_explanation_fit_on_random_fits(submission):
    fresh_seed()
    s = int(torch.randint(5, 100, ()))
    f, w = torch.randn(s), torch.rand(s) + 0.1
    g = f + 0.5 * torch.randn(s)
    mean = (w * f).sum() / w.sum()
    expected = 1 - (w * (f - g) ** 2).sum() / (w * (f - mean) ** 2).sum()
    got = call(submission.explanation_fit, f, g, w)
    assert abs(float(got) - expected.item()) < 1e-4 * max(1.0, abs(expected.item())), \
        f"explanation_fit: expected {expected.item():.6f}, got {float(got):.6f}"
    assert abs(float(call(submission.explanation_fit, f, f.clone(), w)) - 1) < 1e-6, "a perfect fit is 1"


# --- Exercise 7.3: top_k_overlap(a, b, k) -> (N,) -------------------------------------------------------
@pytest.mark.exercise("07.3", points=3, functions=["top_k_overlap"])
def test_top_k_overlap_on_random_coefficients(submission):
    fresh_seed()
    n, m = int(torch.randint(1, 8, ())), int(torch.randint(4, 30, ()))
    a, b = torch.randn(n, m), torch.randn(n, m)
    k = int(torch.randint(1, m, ()))
    top_a, top_b = a.topk(k, dim=1).indices, b.topk(k, dim=1).indices
    expected = (top_a[:, :, None] == top_b[:, None, :]).any(2).float().mean(1)
    assert_close(call(submission.top_k_overlap, a, b, k), expected, f"top_k_overlap(a, b, {k})")
    assert_close(call(submission.top_k_overlap, a, a.clone(), k), torch.ones(n), "a run agrees with itself")
    assert_close(call(submission.top_k_overlap, a, -a, min(k, m // 2)), torch.zeros(n), "reversed order")
