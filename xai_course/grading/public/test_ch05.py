"""Grading tests of chapter 5 (notebooks/05_smoothgrad.ipynb): fresh random inputs and models each run.

The randomness of SmoothGrad is made deterministic for grading: exercise 5.1 draws its noise from a
``torch.Generator`` handed in by the caller (in a documented order), exercise 5.2 receives the noise
already drawn, and exercise 5.3 aggregates a given stack of maps.
"""
import pytest
import torch
from torch import nn

from xai_course.grading.checks import (assert_close, call, check_tensor, fresh_seed, random_cnn, random_mlp,
                                       reference_gradient)


# --- Exercise 5.1: noisy_copies(inputs, samples, level, generator) -> (N, samples, *S) ------------------
def _reference_noisy(inputs, samples, level, seed):
    generator = torch.Generator().manual_seed(seed)
    eps = torch.randn((inputs.shape[0], samples, *inputs.shape[1:]), generator=generator, dtype=inputs.dtype)
    flat = inputs.flatten(1)
    sigma = level * (flat.max(1).values - flat.min(1).values)
    return inputs.unsqueeze(1) + sigma.view(-1, *[1] * inputs.ndim) * eps


def _images_with_different_ranges(n, shape):
    """A batch whose examples have clearly different ranges (max - min), so a global range is wrong."""
    scale = torch.linspace(0.2, 3.0, n)[torch.randperm(n)]
    return torch.rand(n, *shape) * scale.view(-1, *[1] * len(shape)) - 0.5 * scale.view(-1, *[1] * len(shape))


def _check_noisy_exact(submission, inputs, samples, level):
    seed = int(torch.randint(0, 2**31 - 1, ()))
    expected = _reference_noisy(inputs, samples, level, seed)
    got = call(submission.noisy_copies, inputs, samples, level, torch.Generator().manual_seed(seed))
    check_tensor(got, expected.shape, f"noisy_copies(inputs of shape {tuple(inputs.shape)}, samples={samples}, ...)")
    if not torch.allclose(got.detach().double(), expected.double(), rtol=1e-4, atol=1e-5):
        raise AssertionError(
            f"noisy_copies(inputs of shape {tuple(inputs.shape)}, samples={samples}, level={level}) differs from "
            f"the expected draws (max |yours - expected| = {(got.detach() - expected).abs().max():.3g}). Draw the "
            f"noise with ONE call torch.randn((N, samples, *inputs.shape[1:]), generator=generator, dtype=inputs.dtype) "
            f"and scale the copies of example n by sigma_n = level * (max - min of inputs[n])")


@pytest.mark.exercise("05.1", points=2, functions=["noisy_copies"])
def test_noisy_copies_draw_from_the_generator_as_documented(submission):
    fresh_seed()
    _check_noisy_exact(submission, _images_with_different_ranges(int(torch.randint(2, 6, ())), (3, 6, 5)),
                       int(torch.randint(1, 8, ())), float(torch.empty(()).uniform_(0.05, 0.4)))
    _check_noisy_exact(submission, _images_with_different_ranges(int(torch.randint(1, 5, ())), (7,)),
                       int(torch.randint(1, 8, ())), 0.15)


@pytest.mark.exercise("05.1", points=2, functions=["noisy_copies"])
def test_noisy_copies_have_the_papers_noise_level_per_image(submission):
    """Statistics only (any correct way of drawing passes): mean ~ input, std ~ level * range of each image."""
    seed = fresh_seed()
    n, samples, level = 4, 200, float(torch.empty(()).uniform_(0.1, 0.3))
    inputs = _images_with_different_ranges(n, (3, 8, 8))
    rng_before = torch.get_rng_state()
    got = call(submission.noisy_copies, inputs, samples, level, torch.Generator().manual_seed(seed))
    check_tensor(got, (n, samples, *inputs.shape[1:]),
                 f"noisy_copies(inputs of shape {tuple(inputs.shape)}, samples={samples})")
    assert torch.equal(torch.get_rng_state(), rng_before), \
        "noisy_copies used torch's global random generator: draw from the `generator` argument"
    again = call(submission.noisy_copies, inputs, samples, level, torch.Generator().manual_seed(seed))
    assert torch.equal(got, again), "two generators with the same seed must give the same noisy copies"
    ranges = inputs.flatten(1).max(1).values - inputs.flatten(1).min(1).values
    noise = (got.detach() - inputs.unsqueeze(1)).flatten(1)                     # (N, samples * C * H * W)
    std, mean = noise.std(1), noise.mean(1)
    wanted = level * ranges
    assert torch.allclose(std, wanted, rtol=0.05), \
        (f"the noise of each image should have standard deviation level * (max - min) of that image: expected "
         f"{[round(v, 4) for v in wanted.tolist()]}, got {[round(v, 4) for v in std.tolist()]} (seed {seed})")
    assert (mean.abs() < 0.05 * wanted).all(), f"the noise should have mean zero, got means {mean.tolist()}"
    zero = call(submission.noisy_copies, inputs, 3, 0.0, torch.Generator().manual_seed(seed))
    assert_close(zero, inputs.unsqueeze(1).expand(n, 3, *inputs.shape[1:]), "noisy_copies(..., level=0.0): exact copies")


# --- Exercise 5.2: smoothgrad_by_hand(model, inputs, target, noise) -> (N, *S) ---------------------------
def _reference_smoothgrad(model, inputs, target, noise):
    samples = noise.shape[1]
    grads = [reference_gradient(model, inputs + noise[:, k], target) for k in range(samples)]
    return torch.stack(grads).mean(0)


def _check_smoothgrad(submission, model, inputs, target, noise, what):
    expected = _reference_smoothgrad(model, inputs, target, noise)
    assert_close(call(submission.smoothgrad_by_hand, model, inputs, target, noise), expected,
                 f"smoothgrad_by_hand ({what}, {noise.shape[1]} samples)", rtol=1e-4,
                 atol=1e-6 + 1e-4 * float(expected.abs().max()))


@pytest.mark.exercise("05.2", points=3, functions=["smoothgrad_by_hand"])
def test_smoothgrad_by_hand_on_a_random_mlp_with_one_target_per_example(submission):
    fresh_seed()
    d, k, n = int(torch.randint(3, 9, ())), 4, 4
    model = random_mlp(d, 16, k, activation=nn.Tanh)
    inputs, target = torch.randn(n, d), torch.randperm(k)[:n]            # every example its own class
    samples = int(torch.randint(2, 12, ()))
    _check_smoothgrad(submission, model, inputs, target, 0.5 * torch.randn(n, samples, d), "tanh MLP")


@pytest.mark.exercise("05.2", points=3, functions=["smoothgrad_by_hand"])
def test_smoothgrad_by_hand_on_a_random_cnn(submission):
    fresh_seed()
    k, n, samples = int(torch.randint(2, 6, ())), int(torch.randint(1, 4, ())), int(torch.randint(2, 9, ()))
    inputs = torch.rand(n, 3, 8, 8)
    _check_smoothgrad(submission, random_cnn(3, k), inputs, torch.randint(0, k, (n,)),
                      0.15 * torch.randn(n, samples, *inputs.shape[1:]), "CNN with max-pooling")


@pytest.mark.exercise("05.2", points=3, functions=["smoothgrad_by_hand"])
def test_smoothgrad_by_hand_without_noise_and_under_no_grad(submission):
    fresh_seed()
    model, inputs, target = random_mlp(5, 12, 3, activation=nn.Tanh), torch.randn(3, 5), torch.tensor([2, 0, 1])
    assert_close(call(submission.smoothgrad_by_hand, model, inputs, target, torch.zeros(3, 4, 5)),
                 reference_gradient(model, inputs, target), "smoothgrad_by_hand with zero noise (the vanilla gradient)")
    noise = 0.3 * torch.randn(3, 6, 5)
    expected = _reference_smoothgrad(model, inputs, target, noise)
    with torch.no_grad():
        got = call(submission.smoothgrad_by_hand, model, inputs, target, noise)
    assert_close(got, expected, "smoothgrad_by_hand under torch.no_grad()")


# --- Exercise 5.3: aggregate_maps(maps, kind) -> (N, *S) from maps (N, samples, *S) ---------------------
def _reference_aggregate(maps, kind):
    m = maps.double()
    if kind == "smoothgrad":
        out = m.mean(1)
    elif kind == "smoothgrad_sq":
        out = (m ** 2).mean(1)
    else:
        out = (m ** 2).mean(1) - m.mean(1) ** 2
    return out.to(maps.dtype)


def _check_aggregate(submission, maps, kind):
    expected = _reference_aggregate(maps, kind)
    got = call(submission.aggregate_maps, maps, kind)
    check_tensor(got, expected.shape, f"aggregate_maps(maps of shape {tuple(maps.shape)}, {kind!r})")
    if kind == "vargrad" and maps.shape[1] > 1:
        unbiased = expected.double() * maps.shape[1] / (maps.shape[1] - 1)
        if torch.allclose(got.detach().double(), unbiased, rtol=1e-4, atol=1e-5) and \
                not torch.allclose(unbiased, expected.double(), rtol=1e-4, atol=1e-5):
            raise AssertionError("aggregate_maps(..., 'vargrad') divides by n - 1: VarGrad (as in Captum) is the "
                                 "population variance, mean of squares minus square of the mean (divide by n)")
    assert_close(got, expected, f"aggregate_maps(maps of shape {tuple(maps.shape)}, {kind!r})", rtol=1e-4, atol=1e-5)


@pytest.mark.exercise("05.3", points=2, functions=["aggregate_maps"])
def test_aggregate_maps_all_three_kinds(submission):
    fresh_seed()
    samples = int(torch.randint(2, 20, ()))
    maps = 0.5 * torch.randn(2, samples, 3, 5, 4) + torch.randn(2, 1, 3, 5, 4)   # a signal plus noise
    for kind in ("smoothgrad", "smoothgrad_sq", "vargrad"):
        _check_aggregate(submission, maps, kind)


@pytest.mark.exercise("05.3", points=2, functions=["aggregate_maps"])
def test_aggregate_maps_on_other_shapes_and_one_sample(submission):
    fresh_seed()
    for maps in (torch.randn(3, int(torch.randint(2, 30, ())), 7), torch.rand(2, 1, 3, 4, 4)):
        for kind in ("vargrad", "smoothgrad_sq", "smoothgrad"):
            _check_aggregate(submission, maps, kind)
    constant = torch.randn(2, 1, 3, 4).expand(2, 6, 3, 4).clone()
    assert_close(call(submission.aggregate_maps, constant, "vargrad"), torch.zeros(2, 3, 4),
                 "aggregate_maps(identical maps, 'vargrad'): a variance of zero", atol=1e-5)


@pytest.mark.exercise("05.3", points=2, functions=["aggregate_maps"])
def test_aggregate_maps_rejects_an_unknown_kind(submission):
    fresh_seed()
    maps = torch.randn(2, 3, 4)
    try:
        call(submission.aggregate_maps, maps, "smoothgrad_cubed")
    except ValueError:
        return
    except (NotImplementedError, AssertionError):  # not written yet, or changed its input: reported as such
        raise
    except Exception as error:  # noqa: BLE001 - the message says what was raised instead
        raise AssertionError(f"aggregate_maps(maps, 'smoothgrad_cubed') should raise ValueError, "
                             f"raised {type(error).__name__}: {error}") from None
    raise AssertionError("aggregate_maps(maps, 'smoothgrad_cubed') should raise ValueError for an unknown kind")
