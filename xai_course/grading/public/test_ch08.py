"""Grading tests of chapter 8 (notebooks/08_shap.ipynb): fresh random games each run."""
import itertools
import math

import pytest
import torch

from xai_course.grading.checks import assert_close, call, fresh_seed


def _bits(p):
    return ((torch.arange(2 ** p)[:, None] >> torch.arange(p)) & 1).bool()


def _reference_shapley(values):
    """Average of the marginal contributions over all orders of arrival (the permutation form)."""
    p = len(values).bit_length() - 1
    phi = torch.zeros(p, dtype=torch.float64)
    orders = list(itertools.permutations(range(p)))
    for order in orders:
        coalition = 0
        for j in order:
            phi[j] += values[coalition | (1 << j)] - values[coalition]
            coalition |= 1 << j
    return phi / len(orders)


def _values(result, p, what):
    if not isinstance(result, torch.Tensor) or tuple(result.shape) != (p,):
        raise AssertionError(f"{what} must return a tensor of shape ({p},), got "
                             f"{tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__}")
    return result.double()


# --- Exercise 8.1: shapley_from_table(values) -> (p,) ---------------------------------------------------
@pytest.mark.exercise("08.1", points=2, functions=["shapley_from_table"])
def test_shapley_from_table_on_random_games(submission):
    fresh_seed()
    for p in (1, 3, int(torch.randint(4, 7, ()))):
        v = torch.randn(2 ** p, dtype=torch.float64)
        got = _values(call(submission.shapley_from_table, v), p, f"shapley_from_table (p = {p})")
        assert_close(got, _reference_shapley(v), f"shapley_from_table on a random game of {p} players",
                     rtol=1e-6, atol=1e-8)


@pytest.mark.exercise("08.1", points=2, functions=["shapley_from_table"])
def test_shapley_from_table_properties(submission):
    fresh_seed()
    a = torch.randn(5, dtype=torch.float64)
    additive = (_bits(5).double() * a).sum(1)
    assert_close(_values(call(submission.shapley_from_table, additive), 5, "shapley_from_table"), a,
                 "an additive game's Shapley values are its coefficients", rtol=1e-6, atol=1e-8)
    v = torch.randn(16, dtype=torch.float64)
    got = _values(call(submission.shapley_from_table, v.repeat(2)), 5, "shapley_from_table")
    assert abs(got[4].item()) < 1e-8, "a dummy player gets 0"


# --- Exercise 8.2: kernel_shap_fit(z, v, v_empty, v_full) -> (p,) --------------------------------------
@pytest.mark.exercise("08.2", points=3, functions=["kernel_shap_fit"])
def test_kernel_shap_fit_with_all_coalitions_is_exact(submission):
    fresh_seed()
    p = int(torch.randint(3, 7, ()))
    v = torch.randn(2 ** p, dtype=torch.float64)
    z = _bits(p)[1:-1]
    got = _values(call(submission.kernel_shap_fit, z, v[1:-1], v[0].item(), v[-1].item()), p, "kernel_shap_fit")
    assert_close(got, _reference_shapley(v), "kernel_shap_fit with every coalition (the Shapley values)",
                 rtol=1e-6, atol=1e-7)


@pytest.mark.exercise("08.2", points=3, functions=["kernel_shap_fit"])
def test_kernel_shap_fit_on_a_sample(submission):
    fresh_seed()
    p = 6
    z = _bits(p)[1:-1]
    pick = torch.randperm(len(z))[:20]
    a = torch.randn(p, dtype=torch.float64)
    v = (z[pick].double() * a).sum(1) - 1.0
    got = _values(call(submission.kernel_shap_fit, z[pick], v, -1.0, a.sum().item() - 1.0), p, "kernel_shap_fit")
    assert_close(got, a, "an additive game is fitted exactly from 20 coalitions", rtol=1e-6, atol=1e-7)
    w = torch.randn(20, dtype=torch.float64)
    got = _values(call(submission.kernel_shap_fit, z[pick], w, 0.5, 2.0), p, "kernel_shap_fit")
    assert abs(got.sum().item() - 1.5) < 1e-6, "the values must add up to v_full - v_empty"
    # against the closed form of the constrained weighted least squares
    zz = z[pick].double()
    size = zz.sum(1)
    weight = (p - 1) / (torch.tensor([math.comb(p, int(s)) for s in size], dtype=torch.float64) * size * (p - size))
    kkt = torch.zeros(p + 1, p + 1, dtype=torch.float64)
    kkt[:p, :p], kkt[:p, p], kkt[p, :p] = zz.T @ (weight[:, None] * zz), 1.0, 1.0
    rhs = torch.cat([zz.T @ (weight * (w - 0.5)), torch.tensor([1.5], dtype=torch.float64)])
    expected = torch.linalg.lstsq(kkt, rhs[:, None]).solution[:p, 0]
    assert_close(got, expected, "kernel_shap_fit on 20 coalitions of a random game", rtol=1e-5, atol=1e-6)


# --- Exercise 8.3: permutation_shapley(values, orders, seed) -> (p,) -----------------------------------
@pytest.mark.exercise("08.3", points=2, functions=["permutation_shapley"])
def test_permutation_shapley_properties(submission):
    fresh_seed()
    v = torch.randn(32, dtype=torch.float64)
    for orders in (1, 7):
        got = _values(call(submission.permutation_shapley, v, orders, 5), 5, "permutation_shapley")
        assert abs(got.sum().item() - (v[-1] - v[0]).item()) < 1e-8, \
            "every order shares out exactly val(all) - val(empty)"
    again = _values(call(submission.permutation_shapley, v, 7, 5), 5, "permutation_shapley")
    assert torch.allclose(got, again), "the same seed must give the same estimate"
    a = torch.randn(5, dtype=torch.float64)
    additive = (_bits(5).double() * a).sum(1)
    got = _values(call(submission.permutation_shapley, additive, 3, 1), 5, "permutation_shapley")
    assert_close(got, a, "an additive game is estimated exactly from any orders", rtol=1e-6, atol=1e-8)


@pytest.mark.exercise("08.3", points=2, functions=["permutation_shapley"])
def test_permutation_shapley_converges(submission):
    fresh_seed()
    v = torch.randn(16, dtype=torch.float64)
    exact = _reference_shapley(v)
    got = _values(call(submission.permutation_shapley, v, 4000, int(torch.randint(0, 1000, ()))), 4,
                  "permutation_shapley")
    spread = (v.max() - v.min()).item()
    assert (got - exact).abs().max().item() < 0.08 * spread, \
        "with 4000 orders the estimate should be close to the exact Shapley values"
    dummy = _values(call(submission.permutation_shapley, v.repeat(2), 50, 0), 5, "permutation_shapley")
    assert abs(dummy[4].item()) < 1e-10, "a dummy player always gets 0"
