"""Chapter 10: activation maximisation, general, with an expert (a prior) and in a generator's code space.

Closed-form maxima of the concave cases, behaviour on the course models, hygiene and bad input; the
digits generator (VAE) and the Gaussian digits prior.
"""
from __future__ import annotations

import json

import math

import pytest
import torch
from torch import nn

from hygiene import assert_unchanged, snapshot
from xai_course import models
from xai_course.attribution import METHODS, activation_maximization
from xai_course.data import digits
from xai_course.models import zoo
from xai_course.models.generators import GaussianPrior, train_vae

D = 12


def linear_model(seed=0, scale=1.0):
    """logit 0 = w·x, logit 1 = −w·x."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(D, generator=gen) * scale
    model = nn.Linear(D, 2, bias=False).eval()
    with torch.no_grad():
        model.weight.copy_(torch.stack([w, -w]))
    return model, w


def relative_error(x, expected):
    return ((x - expected).norm() / expected.norm()).item()


# ---------------------------------------------------------------- closed forms
@pytest.mark.parametrize("seed, scale, l2", [(0, 1.0, 0.5), (1, 3.0, 0.05), (2, 0.3, 2.0)])
def test_general_am_on_a_linear_model(seed, scale, l2):
    """J(x) = w·x − λ‖x‖² is maximal at x* = w / (2λ) (class 1: −w / (2λ))."""
    model, w = linear_model(seed, scale)
    x = activation_maximization(model, [0, 1], (D,), l2=l2, objective="logit", seed=seed)
    assert x.shape == (2, D)
    assert relative_error(x[0], w / (2 * l2)) < 0.01
    assert relative_error(x[1], -w / (2 * l2)) < 0.01


@pytest.mark.parametrize("seed", [0, 1])
def test_am_with_a_gaussian_expert(seed):
    """J(x) = w·x + log N(x; μ, Σ) is maximal at x* = μ + Σ w."""
    model, w = linear_model(seed)
    gen = torch.Generator().manual_seed(10 + seed)
    mu, B = torch.randn(D, generator=gen), torch.randn(D, D, generator=gen) / D ** 0.5
    sigma = B @ B.T + 0.2 * torch.eye(D)
    prior = GaussianPrior(mu, sigma)
    x = activation_maximization(model, 0, (D,), prior=prior, objective="logit", start="zeros")
    assert relative_error(x[0], mu + sigma @ w) < 0.01
    # any callable x -> log p(x) of shape (N,) will do
    precision = torch.linalg.inv(sigma)
    x = activation_maximization(model, 0, (D,), prior=lambda x: -0.5 * (((x - mu) @ precision) * (x - mu)).sum(1),
                                objective="logit", seed=seed)
    assert relative_error(x[0], mu + sigma @ w) < 0.01


@pytest.mark.parametrize("l2", [0.001, 1e-4])
def test_general_am_converges_where_the_objective_is_nearly_flat(l2):
    """A weak penalty: the maximum lies far out (‖x*‖ ≈ 10³-10⁴), reached by steps far longer than lr."""
    model, w = linear_model(5)
    x = activation_maximization(model, [0, 1], (D,), l2=l2, objective="logit", seed=0)
    assert relative_error(x[0], w / (2 * l2)) < 0.01 and relative_error(x[1], -w / (2 * l2)) < 0.01


@pytest.mark.parametrize("eigenvalues", ["AAt+I", "500..1000", "1..100"])
def test_am_with_an_ill_conditioned_gaussian_expert(eigenvalues):
    """x* = μ + Σw for Σ with eigenvalues spread over two orders of magnitude, in the default steps."""
    model, w = linear_model(6)
    gen = torch.Generator().manual_seed(7)
    if eigenvalues == "AAt+I":
        a = torch.randn(D, D, generator=gen, dtype=torch.float64)
        sigma = a @ a.T + torch.eye(D, dtype=torch.float64)
    else:
        low, high = map(float, eigenvalues.split(".."))
        q, _ = torch.linalg.qr(torch.randn(D, D, generator=gen, dtype=torch.float64))
        sigma = (q * torch.logspace(math.log10(low), math.log10(high), D, dtype=torch.float64)) @ q.T
    mu, sigma = torch.randn(D, generator=gen), sigma.float()
    precision = torch.linalg.inv(sigma.double()).float()
    prior = lambda x: -0.5 * (((x - mu) @ precision) * (x - mu)).sum(1)      # noqa: E731
    x = activation_maximization(model, [0, 1], (D,), prior=prior, objective="logit", seed=0)
    assert relative_error(x[0], mu + sigma @ w) < 0.01
    assert relative_error(x[1], mu - sigma @ w) < 0.01


@pytest.mark.parametrize("l2", [0.1, 1.0])
def test_am_in_code_space_of_a_linear_generator(l2):
    """x = A z + b, J(z) = w·(Az + b) − λ‖z‖²: z* = Aᵀw / (2λ), x* = A Aᵀ w / (2λ) + b."""
    model, w = linear_model(3)
    gen = torch.Generator().manual_seed(4)
    A, b = torch.randn(D, 3, generator=gen), torch.randn(D, generator=gen)
    x = activation_maximization(model, [0, 1], (D,), l2=l2, generator=lambda z: z @ A.T + b, code_shape=(3,),
                                objective="logit", seed=0)
    assert x.shape == (2, D)
    assert relative_error(x[0], A @ A.T @ w / (2 * l2) + b) < 0.01
    assert relative_error(x[1], -A @ A.T @ w / (2 * l2) + b) < 0.01


def test_image_shaped_inputs_and_the_log_prob_objective():
    """A linear model on (1, 4, 4) images, log-softmax objective: stationary point w_c − p·W − 2λx = 0."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    x = activation_maximization(model, 2, (1, 4, 4), l2=0.1, seed=0)
    assert x.shape == (1, 1, 4, 4)
    xr = x.reshape(1, 16).requires_grad_(True)
    J = model[1](xr).log_softmax(1)[0, 2] - 0.1 * xr.pow(2).sum()
    (grad,) = torch.autograd.grad(J, xr)
    assert grad.abs().max() < 1e-3 * model[1].weight.abs().max()


# ---------------------------------------------------------------- on the course models
def test_raises_the_class_probability_of_the_digits_cnn():
    model = models.load("digits_cnn")
    start = torch.full((3, 1, 16, 16), 0.3)
    x = activation_maximization(model, [3, 5, 8], (1, 16, 16), steps=60, l2=0.05, start=start)
    with torch.no_grad():
        before = model(start).softmax(1)[[0, 1, 2], [3, 5, 8]]
        after = model(x).softmax(1)[[0, 1, 2], [3, 5, 8]]
    assert (after > before).all() and (after > 0.5).all()


def test_start_seed_and_batching():
    model, _ = linear_model(0)
    a = activation_maximization(model, [0, 1], (D,), steps=3, l2=1.0, objective="logit", seed=7)
    b = activation_maximization(model, [0, 1], (D,), steps=3, l2=1.0, objective="logit", seed=7)
    assert torch.equal(a, b)
    start = torch.randn(4, D)
    kept = start.clone()
    x = activation_maximization(model, 0, (D,), steps=2, l2=1.0, start=start, objective="logit")
    assert x.shape == (4, D) and torch.equal(start, kept)          # one class, a batch of starting points
    # zeros and a single start image are the same starting point for every example
    z = activation_maximization(model, [0, 0], (D,), steps=1, l2=1.0, start="zeros", objective="logit")
    torch.testing.assert_close(z[0], z[1])


def test_with_the_course_generator_and_prior():
    vae, model = models.load("digits_vae"), models.load("digits_cnn")
    x = activation_maximization(model, [0, 7], (1, 16, 16), steps=30, l2=0.05, generator=vae.decode,
                                code_shape=(vae.latent,), seed=0)
    assert x.shape == (2, 1, 16, 16) and 0 <= x.min() and x.max() <= 1    # a sigmoid decoder's images
    prior = models.digits_prior()
    x = activation_maximization(model, 4, (1, 16, 16), steps=30, prior=prior, seed=0)
    assert x.shape == (1, 1, 16, 16) and torch.isfinite(x).all()


# ---------------------------------------------------------------- hygiene
def test_model_generator_and_prior_left_as_they_were():
    model, vae, prior = models.load("digits_cnn"), models.load("digits_vae"), models.digits_prior()
    snaps = [snapshot(m) for m in (model, vae, prior)]
    activation_maximization(model, 1, (1, 16, 16), steps=5, generator=vae.decoder, code_shape=(8,), prior=prior)
    for m, before in zip((model, vae, prior), snaps):
        assert_unchanged(before, snapshot(m))
    assert all(p.grad is None for p in model.parameters())


def test_train_mode_warns_and_is_restored_and_works_under_no_grad():
    model, _ = linear_model(0)
    model.train()
    with pytest.warns(UserWarning, match="train mode"), torch.no_grad():
        x = activation_maximization(model, 0, (D,), l2=0.5, objective="logit", seed=0)
    assert model.training and not x.requires_grad and x.grad_fn is None


def test_not_an_attribution_method():
    """It takes no inputs, so labs that call METHODS[name](model, inputs, target) must not find it."""
    assert activation_maximization not in METHODS.values()


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(model="not a model"), TypeError, "model"),
    (dict(target=2), ValueError, "target"),
    (dict(target=None), TypeError, "target"),
    (dict(target=1.5), TypeError, "target"),
    (dict(shape=(0, 3)), ValueError, "shape"),
    (dict(shape="12"), ValueError, "shape"),
    (dict(shape=(13,)), ValueError, "shape"),
    (dict(steps=0), ValueError, "steps"),
    (dict(steps=2.5), ValueError, "steps"),
    (dict(lr=0), ValueError, "lr"),
    (dict(l2=-1.0), ValueError, "l2"),
    (dict(l2=float("nan")), ValueError, "l2"),
    (dict(objective="softmax"), ValueError, "objective"),
    (dict(start="ones"), ValueError, "start"),
    (dict(start=torch.zeros(3, 5)), ValueError, "start"),
    (dict(start=torch.full((D,), float("inf"))), ValueError, "finite"),
    (dict(prior="gauss"), TypeError, "prior"),
    (dict(prior=lambda x: x), ValueError, "prior"),
    (dict(generator=lambda z: z), ValueError, "code_shape"),
    (dict(code_shape=(3,)), ValueError, "generator"),
    (dict(generator=lambda z: z, code_shape=(3,)), ValueError, "generator"),
    (dict(seed=1.0), TypeError, "seed"),
])
def test_bad_input_gives_a_clear_error(kwargs, error, words):
    model, _ = linear_model(0)
    args = dict(model=model, target=0, shape=(D,), steps=3) | kwargs
    with pytest.raises(error, match=words):
        activation_maximization(args.pop("model"), args.pop("target"), args.pop("shape"), **args)


def test_a_model_that_returns_no_logits():
    with pytest.raises(ValueError, match="logits"):
        activation_maximization(nn.Flatten(0).eval(), 0, (D,), steps=2)


# ---------------------------------------------------------------- the digits generator and prior
def test_vae_ships_with_checksum_and_model_card():
    checksums = json.loads(zoo.CHECKSUMS.read_text())
    assert checksums["digits_vae"] == zoo.sha256(zoo.weights_path("digits_vae"))
    card = (zoo.WEIGHTS_DIR / "digits_vae.md").read_text()
    for words in ("Architecture", "Training data", "Test accuracy", "python -m xai_course.models.train digits_vae"):
        assert words in card
    assert zoo.weights_path("digits_vae").stat().st_size < 5_000_000


def test_vae_loads_reproducibly_and_reconstructs_held_out_digits():
    a, b = models.load("digits_vae"), models.load("digits_vae")
    assert not a.training and "digits_vae" not in models.MODELS
    for v, w in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(v, w)
    test = digits("test").images
    with torch.no_grad():
        error = (a(test) - test).pow(2).mean()
        baseline = (test.mean(0, keepdim=True) - test).pow(2).mean()   # the mean digit for everyone
    assert error < 0.5 * baseline


def test_vae_training_is_reproducible():
    a, report = train_vae(epochs=1, verbose=False)
    b, _ = train_vae(epochs=1, verbose=False)
    assert report["epochs"] == 1
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


def test_gaussian_prior_is_the_normal_density():
    images = digits("train").images[:300]
    prior = GaussianPrior.fit(images, shrinkage=0.2)
    reference = torch.distributions.MultivariateNormal(prior.mean.double(), prior.covariance.double())
    x = digits("test").images[:5]
    torch.testing.assert_close(prior(x).double(), reference.log_prob(x.reshape(5, -1).double()),
                               rtol=1e-4, atol=1e-2)
    typical, noise = models.digits_prior()(digits("test").images[:20]), models.digits_prior()(torch.rand(20, 1, 16, 16))
    assert typical.min() > noise.max()          # digits are far likelier than noise under it
