"""Chapter 5: SmoothGrad, SmoothGrad² and VarGrad of any attribution method.

Exact parity with Captum's NoiseTunnel given the same draws, the noise level relative to each example's
range, noise 0, seeds, batch_size, the wrapped method's options kept apart from the wrapper's (``options``,
``per_example``: nothing sliced by guessing from shapes), hygiene and bad input.
"""
from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from captum.attr import InputXGradient, IntegratedGradients, NoiseTunnel, Saliency
from torch import nn

from conftest import ALL_ARCHITECTURES as ALL, float32_atol, make, make_architecture
from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from xai_course.attribution import (METHODS, count_passes, deepshap, fullgrad, input_x_gradient, integrated_gradients,
                                    saliency, smoothgrad)
from xai_course.attribution.smoothgrad import KINDS




def unit_range(x: torch.Tensor) -> torch.Tensor:
    """Each example rescaled so that its minimum is exactly 0 and its maximum exactly 1 (range 1)."""
    flat = x.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - low) / (high - low)).view_as(x)


# the wrapped methods and their Captum counterparts, every option pinned on both sides
CAPTUM = {
    "saliency": (Saliency, dict(abs=False), dict(abs=False)),
    "input_x_gradient": (InputXGradient, {}, {}),
    "integrated_gradients": (IntegratedGradients, dict(steps=3), dict(n_steps=3)),
}


def noise_tunnel(model, x, target, method, kind, samples, noise, seed, **captum_options):
    """Captum's NoiseTunnel after torch.manual_seed(seed): stdevs = noise is our σ on unit-range inputs."""
    cls, _, options = CAPTUM[method]
    torch.manual_seed(seed)
    return NoiseTunnel(cls(model)).attribute(x, nt_type=kind, nt_samples=samples, stdevs=noise, target=target,
                                             **options, **captum_options)


def ours(model, x, target, method, kind, samples, noise, seed, options=None, **wrapper):
    """smoothgrad drawing from torch's global generator (seed=None) after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    return smoothgrad(model, x, target, method=method, kind=kind, samples=samples, noise=noise,
                      options={**CAPTUM[method][1], **(options or {})}, **wrapper)


def test_unit_range_inputs_have_range_exactly_one():
    x = unit_range(torch.randn(4, 3, 5, 5) * 7)
    flat = x.flatten(1)
    assert torch.equal(flat.max(1).values - flat.min(1).values, torch.ones(4))


# ---------------------------------------------------------------- reference parity (Captum NoiseTunnel)
@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("method", sorted(CAPTUM))
def test_matches_captum_noise_tunnel(arch, method):
    """Same draws: Captum adds torch.normal(0, stdevs) to x.repeat_interleave(S) (example-major); we draw
    torch.randn in the same order times σ = noise·(max - min) = noise on unit-range inputs. Each
    architecture meets every kind across the three methods."""
    kind = KINDS[(ALL.index(arch) + sorted(CAPTUM).index(method)) % 3]
    model, x, target = make(arch)
    x = unit_range(x)
    got = ours(model, x, target, method, kind, samples=3, noise=0.2, seed=5)
    expected = noise_tunnel(model, x, target, method, kind, samples=3, noise=0.2, seed=5)
    assert got.shape == x.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


@pytest.mark.parametrize("arch", ["mlp", "sigmoid_mlp"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", sorted(CAPTUM))
def test_every_kind_of_every_method_matches_captum(arch, kind, method):
    model, x, target = make(arch, n=5)
    x = unit_range(x)
    got = ours(model, x, target, method, kind, samples=4, noise=0.3, seed=1)
    expected = noise_tunnel(model, x, target, method, kind, samples=4, noise=0.3, seed=1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=float32_atol(expected))


@pytest.mark.parametrize("batch_size", [None, 2, 5])
def test_ig_baseline_per_example_follows_its_example_as_in_captum(batch_size):
    """A per-example IG baseline (N, ...) is repeated for each example's noisy copies, as NoiseTunnel
    repeats it; batch_size 2 and 5 cut through the copies of an example (S = 3)."""
    model, x, target = make("resnet_style", n=3)
    x, refs = unit_range(x), torch.rand(3, *x.shape[1:]) * 0.5
    got = ours(model, x, target, "integrated_gradients", "smoothgrad", 3, 0.1, seed=2, options=dict(baseline=refs),
               per_example=["baseline"], batch_size=batch_size)
    expected = noise_tunnel(model, x, target, "integrated_gradients", "smoothgrad", 3, 0.1, seed=2, baselines=refs)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
    # with noise 0 it is IG of each example from its own baseline
    exact = smoothgrad(model, x, target, method="integrated_gradients", noise=0.0, samples=2,
                       options=dict(steps=3, baseline=refs), per_example="baseline", batch_size=batch_size)
    torch.testing.assert_close(exact, integrated_gradients(model, x, target, baseline=refs, steps=3),
                               rtol=1e-5, atol=1e-6)


def test_shared_baseline_is_not_split():
    model, x, target = make("resnet_style", n=3)
    ref = torch.rand(1, *x.shape[1:])
    got = smoothgrad(model, x, target, method="integrated_gradients", noise=0.0, samples=2,
                     options=dict(steps=3, baseline=ref), batch_size=4)
    torch.testing.assert_close(got, integrated_gradients(model, x, target, baseline=ref, steps=3), rtol=1e-5,
                               atol=1e-6)


def test_quadrature_of_the_wrapped_ig_through_a_partial():
    """smoothgrad's own ``method`` parameter takes the name, so IG's ``method`` (the quadrature) is given
    with functools.partial; it matches Captum with the same rule."""
    model, x, target = make("mlp", n=3)
    x = unit_range(x)
    ig_middle = functools.partial(integrated_gradients, method="riemann_middle", steps=4)
    torch.manual_seed(0)
    got = smoothgrad(model, x, target, method=ig_middle, samples=3, noise=0.2)
    torch.manual_seed(0)
    expected = NoiseTunnel(IntegratedGradients(model)).attribute(x, nt_samples=3, stdevs=0.2, target=target,
                                                                 n_steps=4, method="riemann_middle")
    torch.testing.assert_close(got, expected)


def test_wrapped_ig_keeps_its_own_method_and_batch_size():
    """IG's ``method`` (the quadrature) and ``batch_size`` (path points per pass) have the names of the
    wrapper's options; in ``options`` they reach IG: the rule matches Captum's, and no pass of the model
    holds more than IG's batch_size points while the wrapper sends all 3 x 3 copies in one call."""
    model, x, target = make("mlp", n=3)
    x = unit_range(x)
    torch.manual_seed(0)
    with count_passes(model) as counter:
        got = smoothgrad(model, x, target, method="integrated_gradients", samples=3, noise=0.2,
                         options=dict(method="riemann_middle", steps=4, batch_size=5))
    torch.manual_seed(0)
    expected = NoiseTunnel(IntegratedGradients(model)).attribute(x, nt_samples=3, stdevs=0.2, target=target,
                                                                 n_steps=4, method="riemann_middle")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
    assert max(counter) <= 5 and sum(counter) == 3 * 3 * 4


@pytest.mark.parametrize("batch_size", [None, 1, 2, 4])
@pytest.mark.parametrize("n", [3, 4])
def test_deepshap_background_set_is_never_sliced(batch_size, n):
    """A background set of N references (as many as the examples) is one set, given whole to every call:
    with noise 0 the result is DeepSHAP itself. The old interface guessed from the shape that it was a
    per-example option and cut it with the batches: an error of 0.16 on the course CNN."""
    model, x, target = make("resnet_style", n=n)
    background = torch.rand(n, *x.shape[1:], generator=torch.Generator().manual_seed(3))
    expected = deepshap(model, x, target, baselines=background)
    got = smoothgrad(model, x, target, method="deepshap", noise=0.0, samples=2, batch_size=batch_size,
                     options=dict(baselines=background))
    scale = expected.abs().max().item()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * scale)  # float32 sums: ~1e-7 relative


def test_per_example_option_is_repeated_only_when_named():
    """The same (N, ...) tensor is a per-example baseline when named in per_example, one shared set of
    N references for DeepSHAP otherwise: the caller says which, nothing is guessed."""
    model, x, target = make("mlp", n=3)
    refs = torch.rand(3, *x.shape[1:], generator=torch.Generator().manual_seed(1))
    per_example = smoothgrad(model, x, target, method="integrated_gradients", noise=0.0, samples=2, batch_size=1,
                             options=dict(baseline=refs, steps=4), per_example=["baseline"])
    expected = integrated_gradients(model, x, target, baseline=refs, steps=4)
    torch.testing.assert_close(per_example, expected, rtol=1e-5, atol=float32_atol(expected))


# ---------------------------------------------------------------- known answers
@pytest.mark.parametrize("method, options", [(saliency, {}), (saliency, dict(abs=False)), (input_x_gradient, {}),
                                             (integrated_gradients, dict(steps=4)), (fullgrad, {})])
def test_noise_zero_gives_the_wrapped_method(method, options):
    model, x, target = make("resnet_style", n=3)
    plain = method(model, x, target, **options)
    for kind, expected in [("smoothgrad", plain), ("smoothgrad_sq", plain**2), ("vargrad", torch.zeros_like(plain))]:
        got = smoothgrad(model, x, target, method=method, noise=0.0, samples=3, kind=kind, options=options)
        assert got.shape == plain.shape  # also maps of another shape than the inputs (fullgrad: N, 1, H, W)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=float32_atol(plain, plain**2))


def linear_model():
    model = nn.Linear(6, 2, bias=False).eval()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 3.0, -1.0, 2.0], [0.0] * 6]))
    return model


def test_noise_is_relative_to_each_examples_range():
    """Gradient x input of a linear model is w ⊙ (x + ε): scaling one example by c scales its noise, and
    so its SmoothGrad and (c²) its VarGrad, by c, and leaves the other example alone (same draws).
    Shifting it adds w ⊙ shift and leaves its noise (range) unchanged."""
    model, w = linear_model(), linear_model().weight[0].detach()
    x = torch.randn(2, 6)
    c, shift = 10.0, 3.0

    def sg(inputs, kind="smoothgrad"):
        return smoothgrad(model, inputs, 0, method="input_x_gradient", samples=8, noise=0.2, kind=kind, seed=3)

    base, scaled, shifted = sg(x), sg(torch.stack([x[0], c * x[1]])), sg(torch.stack([x[0], x[1] + shift]))
    torch.testing.assert_close(scaled[0], base[0])
    torch.testing.assert_close(scaled[1], c * base[1])
    torch.testing.assert_close(shifted[1], base[1] + shift * w)
    torch.testing.assert_close(sg(torch.stack([x[0], c * x[1]]), "vargrad")[1], c**2 * sg(x, "vargrad")[1],
                               rtol=1e-4, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(0.01, 100, allow_subnormal=False), shift=st.floats(-10, 10, allow_subnormal=False),
       kind=st.sampled_from(KINDS))
def test_scaling_and_shifting_inputs_of_a_linear_model(scale, shift, kind):
    """Same draws, σ proportional to the range: SmoothGrad of w ⊙ (x + ε) is equivariant, SG² and VarGrad
    of the gradient (w) invariant."""
    model, w = linear_model(), linear_model().weight[0].detach()
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))

    def sg(inputs, method="input_x_gradient", kind="smoothgrad", **options):
        return smoothgrad(model, inputs, 0, method=method, samples=4, kind=kind, seed=1, options=options)

    torch.testing.assert_close(sg(scale * x + shift), scale * sg(x) + shift * w, rtol=1e-4,
                               atol=1e-4 * (scale + abs(shift)))
    torch.testing.assert_close(sg(scale * x + shift, "saliency", kind, abs=False), sg(x, "saliency", kind, abs=False))


def test_vargrad_of_a_linear_model_is_w_squared_sigma_squared():
    """VarGrad of w ⊙ (x + ε) is w² Var(ε) = w² (noise · range)²: a statistical known answer (1000
    draws; the relative error of a variance estimate is √(2/S) ≈ 4.5%, averaged over 6 features)."""
    model, w = linear_model(), linear_model().weight[0].detach()
    x = torch.randn(3, 6) * torch.tensor([[1.0], [5.0], [0.2]])
    spread = x.max(1).values - x.min(1).values
    got = smoothgrad(model, x, 0, method="input_x_gradient", samples=1000, noise=0.15, kind="vargrad", seed=0)
    ratio = (got / w**2).mean(1) / (0.15 * spread) ** 2
    assert torch.allclose(ratio, torch.ones(3), rtol=0.1)


def test_smoothgrad_of_a_linear_models_gradient_is_the_gradient():
    model = linear_model()
    x = torch.randn(4, 6)
    got = smoothgrad(model, x, 0, method="saliency", options={"abs": False}, samples=5, noise=0.5, seed=0)
    torch.testing.assert_close(got, model.weight[0].detach().expand(4, 6))


# ---------------------------------------------------------------- determinism, batch_size, method forms
def test_seed_determinism():
    model, x, target = make("resnet_style")
    a = smoothgrad(model, x, target, samples=4, seed=7)
    state = torch.get_rng_state()
    assert torch.equal(a, smoothgrad(model, x, target, samples=4, seed=7))
    assert torch.equal(torch.get_rng_state(), state)  # a seeded call leaves torch's global generator alone
    assert not torch.allclose(a, smoothgrad(model, x, target, samples=4, seed=8))
    torch.manual_seed(1)
    b = smoothgrad(model, x, target, samples=4)
    torch.manual_seed(1)
    assert torch.equal(b, smoothgrad(model, x, target, samples=4))




@pytest.mark.parametrize("batch_size", [1, 2, 5, 12, 100])
def test_batch_size_gives_the_same_result_and_bounds_each_call(batch_size):
    model, x, target = make("resnet_style", n=4)  # 4 examples x 3 samples = 12 noisy inputs
    with count_passes(model) as all_at_once:
        expected = smoothgrad(model, x, target, samples=3, kind="vargrad", seed=0)
    assert all_at_once == [12]
    with count_passes(model) as chunked:
        got = smoothgrad(model, x, target, samples=3, kind="vargrad", seed=0, batch_size=batch_size)
    assert max(chunked) <= batch_size and sum(chunked) == 12
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=float32_atol(expected, ulps=1000))  # a variance: cancels


def test_method_by_name_and_by_function():
    model, x, target = make("resnet_style")
    by_name = smoothgrad(model, x, target, method="input_x_gradient", samples=3, seed=0)
    torch.testing.assert_close(smoothgrad(model, x, target, method=input_x_gradient, samples=3, seed=0), by_name)
    torch.testing.assert_close(smoothgrad(model, x, target, method=METHODS["input_x_gradient"], samples=3, seed=0),
                               by_name)
    cubed = smoothgrad(model, x, target, method=lambda m, inputs, t: input_x_gradient(m, inputs, t) ** 3, samples=3,
                       seed=0, kind="smoothgrad")
    assert cubed.shape == x.shape and not torch.allclose(cubed, by_name)
    # options reach the method: saliency's abs
    signed = smoothgrad(model, x, target, method="saliency", options={"abs": False}, samples=1, noise=0.0)
    torch.testing.assert_close(signed, saliency(model, x, target, abs=False))
    assert METHODS["smoothgrad"] is smoothgrad


# ---------------------------------------------------------------- hygiene
@pytest.mark.parametrize("arch", ALL)
def test_model_and_inputs_left_as_they_were(arch):
    model, x, target = make(arch)
    before, x_before = snapshot(model), inputs_snapshot(x)
    smoothgrad(model, x, target, samples=2, seed=0, batch_size=3)
    smoothgrad(model, x, target, method="integrated_gradients", options={"steps": 2}, samples=2, kind="vargrad",
               seed=0)
    assert_unchanged(before, snapshot(model))
    assert_inputs_unchanged(x_before, x)


def test_train_mode_model_is_explained_in_eval_mode_and_restored():
    model, x, target = make("course_resnet")
    expected = smoothgrad(model, x, target, samples=2, seed=0)
    model.train()
    model.classifier_dropout = nn.Dropout(0.5)
    before = snapshot(model)
    with pytest.warns(UserWarning, match="train mode"):
        got = smoothgrad(model, x, target, samples=2, seed=0)
    assert_unchanged(before, snapshot(model))
    assert model.training and model.classifier_dropout.training
    torch.testing.assert_close(got, expected)


def test_works_under_no_grad_and_leaves_inputs_that_require_grad_alone():
    model, x, target = make("resnet_style")
    expected = smoothgrad(model, x, target, samples=2, seed=0)
    x.requires_grad_(True)
    before = inputs_snapshot(x)
    with torch.no_grad():
        got = smoothgrad(model, x, target, samples=2, seed=0)
    assert_inputs_unchanged(before, x)
    torch.testing.assert_close(got, expected)
    assert not got.requires_grad and got.grad_fn is None


def test_model_restored_after_an_error_inside():
    model, x, _ = make("resnet_style")
    model.train()
    before = snapshot(model)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="target"):
        smoothgrad(model, x, 99, samples=2)
    assert_unchanged(before, snapshot(model))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(model="not a model"), TypeError, "model"),
    (dict(inputs=[[1.0] * 10]), TypeError, "inputs"),
    (dict(inputs=torch.ones(10)), ValueError, "inputs"),
    (dict(inputs=torch.full((2, 10), float("nan"))), ValueError, "finite"),
    (dict(target=3), ValueError, "target"),
    (dict(target=None), TypeError, "target"),
    (dict(kind="sg"), ValueError, "kind"),
    (dict(kind="smoothgrad_squared"), ValueError, "kind"),
    (dict(method="gradient"), ValueError, "method"),
    (dict(method="smoothgrad"), ValueError, "method"),
    (dict(method=3), TypeError, "method"),
    (dict(samples=0), ValueError, "samples"),
    (dict(samples=2.0), ValueError, "samples"),
    (dict(samples=True), ValueError, "samples"),
    (dict(noise=-0.1), ValueError, "noise"),
    (dict(noise="0.1"), ValueError, "noise"),
    (dict(noise=True), ValueError, "noise"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=1.5), ValueError, "batch_size"),
    (dict(batch_size=True), ValueError, "batch_size"),
    (dict(seed="zero"), TypeError, "seed"),
    (dict(steps=3), TypeError, "options="),  # a wrapped method's option given as the wrapper's
    (dict(abs=False), TypeError, "options="),
    (dict(options={"steps": 3}), TypeError, "steps"),  # an option the wrapped method (saliency) does not take
    (dict(options=[("abs", False)]), TypeError, "options"),
    (dict(options={"abs": False}, per_example=["baseline"]), ValueError, "per_example"),
    (dict(options={"baseline": torch.zeros(2, 10)}, per_example="baseline", method="integrated_gradients"),
     ValueError, "one row per example"),  # mlp inputs: 5 examples
])
def test_bad_input_gives_a_clear_error(kwargs, error, words):
    model, x, _ = make_architecture("mlp")
    args = dict(model=model, inputs=x, target=0) | kwargs
    with pytest.raises(error, match=words):
        smoothgrad(args.pop("model"), args.pop("inputs"), args.pop("target"), **args)


def test_bad_option_of_the_wrapped_method():
    model, x, target = make("resnet_style")
    with pytest.raises(ValueError, match="baseline"):
        smoothgrad(model, x, target, method="integrated_gradients", options={"baseline": torch.zeros(3, 3, 16, 16)})
    with pytest.raises(ValueError, match="steps"):
        smoothgrad(model, x, target, method="integrated_gradients", options={"steps": 1})


def test_defaults_are_the_papers():
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(smoothgrad).parameters.items()}
    assert defaults["noise"] == 0.15 and defaults["samples"] == 50 and defaults["kind"] == "smoothgrad"
