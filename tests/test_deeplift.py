"""Chapter 3: DeepLIFT (Rescale, RevealCancel), DeepSHAP, and the baselines they compare with.

Known answers worked by hand (the saturating toy, the DeepLIFT paper's min network, the DeepLIFT
repository's RevealCancel example, max-pooling), summation-to-delta on every architecture, Captum parity
(DeepLift, DeepLiftShap) through the Captum-compatible twins of reference_twins.py, hygiene and bad input.
"""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from captum.attr import DeepLift, DeepLiftShap
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import ARCHITECTURES, float32_atol, make_architecture
from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from reference_twins import EXTRA_ARCHITECTURES, captum_twin, make_any_architecture, without_overlapping_pools
from xai_course.attribution import METHODS, deeplift, deepshap, make_baseline
from xai_course.attribution.baselines import NAMES
from xai_course.models import Saturating

ALL = ARCHITECTURES + EXTRA_ARCHITECTURES
# RevealCancel needs every nonlinearity to take a Linear/Conv output directly (no BatchNorm, no skip sum)
REVEAL_CANCEL_REFUSED = {"resnet_style", "course_resnet", "torchvision_resnet18"}


def delta_tolerance(model, x, reference, target):
    """100 float32 eps relative to the logits (at least 1): summation-to-delta is F(x) - F(x') computed
    in float32 through the whole network, whose rounding error scales with the logits, not with their
    difference."""
    with torch.no_grad():
        a, b = model(x).gather(1, target[:, None]), model(reference).gather(1, target[:, None])
    return float32_atol(1.0, a, b, a - b)


# ---------------------------------------------------------------- known answers on hand-worked toys
@pytest.mark.parametrize("i, rescale, reveal_cancel", [
    # Saturating: y = 1 - ReLU(1 - i1 - i2), reference (0, 0): the ReLU's input is 1 there, y(0) = 0.
    # (1, 1):   ReLU input 1 -> -1 (Δ = -2), output 1 -> 0 (Δ = -1): m = 1/2, so C = (1/2, 1/2), sum = y = 1.
    #           RevealCancel: Δ⁺ = 0, Δ⁻ = -2 (both inputs push the ReLU input down): the same m⁻ = 1/2.
    ((1.0, 1.0), (0.5, 0.5), (0.5, 0.5)),
    # (0.2, 0.3): ReLU input 1 -> 0.5, still on: m = 1, C = (0.2, 0.3), sum = y = 0.5 (the linear regime).
    ((0.2, 0.3), (0.2, 0.3), (0.2, 0.3)),
    # (0.7, 0.6): ReLU input 1 -> -0.3 (Δ = -1.3), output Δ = -1: m = 10/13, C = (7/13, 6/13), sum 1.
    ((0.7, 0.6), (7 / 13, 6 / 13), (7 / 13, 6 / 13)),
    # (3, -1.5): ReLU input 1 -> -0.5 (Δ = -1.5), output Δ = -1: Rescale m = 2/3, C = (2, -1), sum 1.
    #   RevealCancel: i1 pushes the ReLU input by Δ⁻ = -3, i2 by Δ⁺ = +1.5.
    #   Δh⁺ = ½(f(1 + 1.5) - f(1)) + ½(f(1 - 3 + 1.5) - f(1 - 3)) = ½·1.5 + ½·0 = 0.75  -> m⁺ = 1/2
    #   Δh⁻ = ½(f(1 - 3) - f(1)) + ½(f(1 + 1.5 - 3) - f(1 + 1.5)) = -½ - 1.25 = -1.75 -> m⁻ = 7/12
    #   y = 1 - h: C(i1) = -(m⁻·(-3)) = 1.75, C(i2) = -(m⁺·1.5) = -0.75; sum 1.
    ((3.0, -1.5), (2.0, -1.0), (1.75, -0.75)),
])
def test_saturating_toy_by_hand(i, rescale, reveal_cancel):
    toy, x = Saturating(), torch.tensor([i])
    for rule, expected in (("rescale", rescale), ("reveal_cancel", reveal_cancel)):
        got, delta = deeplift(toy, x, 0, rule=rule, return_delta=True)
        torch.testing.assert_close(got, torch.tensor([expected]), rtol=1e-6, atol=1e-6)
        assert abs(delta.item()) < 1e-6


def test_saturating_toy_deeplift_sees_what_the_gradient_misses():
    """The chapter's point: at (1, 1) the gradient is 0, DeepLIFT gives each input half of y = 1."""
    toy, x = Saturating(), torch.tensor([[1.0, 1.0]])
    x.requires_grad_(True)
    assert torch.autograd.grad(toy(x).sum(), x)[0].abs().sum() == 0
    torch.testing.assert_close(deeplift(toy, x.detach(), 0), torch.tensor([[0.5, 0.5]]))


class MinNetwork(nn.Module):
    """The DeepLIFT paper's Figure 3 / Sec. 3.5.3: o = min(i1, i2) = i1 - ReLU(i1 - i2), reference (0, 0)."""

    def __init__(self):
        super().__init__()
        self.difference = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.difference.weight.copy_(torch.tensor([[1.0, -1.0]]))

    def forward(self, i):
        return i[:, :1] - torch.relu(self.difference(i))


@pytest.mark.parametrize("i1, i2", [(3.0, 1.0), (1.0, 3.0), (0.6, 0.25), (2.0, 2.0 + 1e-3)])
def test_the_papers_min_network(i1, i2):
    """Rescale (like the gradient) gives all of min(i1, i2) to the smaller input; RevealCancel gives each
    input 0.5 min(i1, i2), the paper's answer.

    i1 > i2 > 0: h = ReLU(i1 - i2) with Δ = i1 - i2 > 0, m = 1: C(i1) = i1 - i1 = 0, C(i2) = i2.
      RevealCancel: Δ⁺ = i1, Δ⁻ = -i2, Δh⁺ = ½ i1 + ½ (i1 - i2) = i1 - i2/2,
      Δh⁻ = ½·0 + ½ (i1 - i2 - i1) = -i2/2,
      so m⁺ = 1 - i2/(2 i1), m⁻ = 1/2: C(i1) = i1 - m⁺ i1 = i2/2, C(i2) = -m⁻·(-i2) = i2/2.
    i1 < i2: h stays 0 (Δh = 0), Rescale m = 0: C = (i1, 0). RevealCancel: Δh⁺ = ½ i1, Δh⁻ = -½ i1,
      C(i1) = i1 - ½ i1 = i1/2, C(i2) = i1/2.
    """
    net, x = MinNetwork().eval(), torch.tensor([[i1, i2]])
    small = min(i1, i2)
    rescale = torch.tensor([[0.0, i2]]) if i1 > i2 else torch.tensor([[i1, 0.0]])
    torch.testing.assert_close(deeplift(net, x, 0), rescale, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(deeplift(net, x, 0, rule="reveal_cancel"), torch.tensor([[small / 2, small / 2]]),
                               rtol=1e-5, atol=1e-6)


def test_the_deeplift_repositorys_reveal_cancel_example():
    """kundajelab/deeplift, tests/blobs/test_revealcancel_dense.py: y = ReLU(w·x + 1), w = (1, -2, -3, 4),
    x = (-1, -1, 1, 1), reference 0. The ReLU input goes 1 -> 3; the inputs push it by w_i x_i =
    (-1, 2, -3, 4): Δ⁺ = 6, Δ⁻ = -4. Δy⁺ = ½(f(7) - f(1)) + ½(f(3) - f(-3)) = 4.5,
    Δy⁻ = ½(f(-3) - f(1)) + ½(f(3) - f(7)) = -2.5: multipliers m = w · (2.5/4, 4.5/6, 2.5/4, 4.5/6), by the
    sign of w_i x_i.
    Rescale: Δy = 2 = Δ(input) so m = w."""
    layer = nn.Linear(4, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, -3.0, 4.0]]))
        layer.bias.fill_(1.0)
    net, x = nn.Sequential(layer, nn.ReLU()).eval(), torch.tensor([[-1.0, -1.0, 1.0, 1.0]])
    w = torch.tensor([[1.0, -2.0, -3.0, 4.0]])
    multipliers = w * torch.tensor([[2.5 / 4, 4.5 / 6, 2.5 / 4, 4.5 / 6]])
    got, delta = deeplift(net, x, 0, rule="reveal_cancel", return_delta=True)
    torch.testing.assert_close(got, multipliers * x)              # (-0.625, 1.5, -1.875, 3), sum 2
    torch.testing.assert_close(deeplift(net, x, 0), w * x)
    assert abs(delta.item()) < 1e-6


class Pools(nn.Module):
    """MaxPool1d(2) -> Linear [[1, 1], [1, -1]] -> MaxPool1d(2), on inputs (N, 4)."""

    def __init__(self):
        super().__init__()
        self.pool1, self.pool2, self.mix = nn.MaxPool1d(2), nn.MaxPool1d(2), nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.mix.weight.copy_(torch.tensor([[1.0, 1.0], [1.0, -1.0]]))

    def forward(self, x):
        return self.pool2(self.mix(self.pool1(x[:, None])[:, 0])[:, None])[:, 0]


def test_max_pooling_by_hand_two_pools_apart():
    """x = (3, 0, 2, 0), x' = (6, 1, -1, -2): pool1 gives u = (3, 2), u' = (6, -1); the mix v = (5, 1),
    v' = (5, 7); pool2 t = 5, t' = 7, Δt = -2. At pool2 the difference -2 goes to x''s maximum v2 (Δv2 = -6):
    m(v) = (1 at v1, where Δ = 0: the gradient for x, 1/3 at v2), so m(u) = W^T m(v) = (4/3, 2/3).
    pool1: window 1 (3, 0) vs (6, 1): Δu1 = -3 goes to x''s maximum x1 (Δx1 = -3): C(x1) = 4/3·(-3) = -4;
    window 2 (2, 0) vs (-1, -2): Δu2 = 3 goes to x's maximum x3 (Δx3 = 3): C(x3) = 2/3·3 = 2. Sum -2.
    (The reference half's own signal differs where Δ = 0; mixing it in gave (-1, 0, 2, 0), delta 3.)"""
    x, reference = torch.tensor([[3.0, 0.0, 2.0, 0.0]]), torch.tensor([[6.0, 1.0, -1.0, -2.0]])
    for rule in ("rescale", "reveal_cancel"):
        got, delta = deeplift(Pools().eval(), x, 0, baseline=reference, rule=rule, return_delta=True)
        torch.testing.assert_close(got, torch.tensor([[-4.0, 0.0, 2.0, 0.0]]))
        assert abs(delta.item()) < 1e-6
    theirs = DeepLift(Pools().eval()).attribute(x, baselines=reference, target=0)
    torch.testing.assert_close(theirs.detach(), torch.tensor([[-4.0, 0.0, 2.0, 0.0]]))


def test_overlapping_max_pool_windows_add_up():
    """x = (1, 3, 2), x' = 0, MaxPool1d(2, stride=1), t = sum: both windows have their maximum at x2, each
    passes Δ = 3 there: C = (0, 6, 0) = Δt. (Captum's max_unpool overwrites instead and gives 3.)"""
    net = nn.Sequential(nn.Unflatten(1, (1, 3)), nn.MaxPool1d(2, stride=1), nn.Flatten(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[3].weight.fill_(1.0)
    got, delta = deeplift(net.eval(), torch.tensor([[1.0, 3.0, 2.0]]), 0, return_delta=True)
    torch.testing.assert_close(got, torch.tensor([[0.0, 6.0, 0.0]]))
    assert abs(delta.item()) < 1e-6


def test_linear_model_contributions_are_weight_times_difference():
    model = nn.Linear(6, 3).eval()
    x, reference = torch.randn(4, 6), torch.randn(4, 6)
    for rule in ("rescale", "reveal_cancel"):
        torch.testing.assert_close(deeplift(model, x, 2, baseline=reference, rule=rule),
                                   model.weight[2].detach() * (x - reference))


# ---------------------------------------------------------------- summation-to-delta
@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
def test_summation_to_delta(arch, rule):
    model, x, target = make_any_architecture(arch)
    reference = make_baseline(x, "blurred" if x.ndim == 4 else "uniform")
    if rule == "reveal_cancel" and arch in REVEAL_CANCEL_REFUSED:
        with pytest.raises(ValueError, match=r"rule='reveal_cancel' needs every nonlinearity .*rule='rescale'"):
            deeplift(model, x, target, baseline=reference, rule=rule)
        return
    got, delta = deeplift(model, x, target, baseline=reference, rule=rule, return_delta=True)
    assert got.shape == x.shape and delta.shape == (x.shape[0],)
    with torch.no_grad():
        change = model(x).gather(1, target[:, None])[:, 0] - model(reference).gather(1, target[:, None])[:, 0]
    # what delta means; float32 sums: the error is relative to the terms summed (Σ|C|, the logits)
    with torch.no_grad():
        logits = torch.stack([model(x).abs().max(), model(reference).abs().max()])
    torch.testing.assert_close(delta, got.flatten(1).sum(1) - change, rtol=0,
                               atol=float32_atol(got.abs().flatten(1).sum(1), logits))
    assert delta.abs().max() < delta_tolerance(model, x, reference, target)
    assert change.abs().max() > 1e-3                                                    # not a trivial case


def test_reveal_cancel_refuses_what_does_not_follow_a_linear_layer():
    for middle in (nn.BatchNorm1d(5), nn.Identity(), nn.Dropout(0.0)):
        model = nn.Sequential(nn.Linear(4, 5), middle, nn.ReLU(), nn.Linear(5, 2)).eval()
        if isinstance(middle, nn.BatchNorm1d):
            with pytest.raises(ValueError, match="reveal_cancel"):
                deeplift(model, torch.randn(3, 4), 0, rule="reveal_cancel")
        else:  # modules that hand the very tensor on are fine
            _, delta = deeplift(model, torch.randn(3, 4), 0, rule="reveal_cancel", return_delta=True)
            assert delta.abs().max() < 1e-6

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 5), nn.Linear(5, 2)

        def forward(self, x):
            return self.b(torch.relu(2 * self.a(x)))

    with pytest.raises(ValueError, match="Linear or Conv"):
        deeplift(Scaled().eval(), torch.randn(3, 4), 0, rule="reveal_cancel")


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.floats(0.1, 10.0), rule=st.sampled_from(["rescale", "reveal_cancel"]))
def test_summation_to_delta_holds_for_any_input_and_reference(seed, scale, rule):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 6), nn.Tanh(),
                          nn.Unflatten(1, (1, 6)), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(3, 2)).eval()
    x, reference = scale * torch.randn(3, 5, generator=gen), scale * torch.randn(3, 5, generator=gen)
    reference[0] = x[0]                                          # one example equal to its reference: all 0
    x, reference, model = x.double(), reference.double(), model.double()
    got, delta = deeplift(model, x, 1, baseline=reference, rule=rule, return_delta=True)
    assert delta.abs().max() < 1e-10
    assert got[0].abs().max() == 0


def test_batch_size_and_order_do_not_matter():
    model, x, target = make_architecture("resnet_style")
    full = deeplift(model, x, target, baseline="grey")
    for i in range(len(x)):
        torch.testing.assert_close(deeplift(model, x[i:i + 1], target[i:i + 1], baseline="grey"), full[i:i + 1],
                                   rtol=1e-4, atol=float32_atol(full))
    torch.testing.assert_close(deeplift(model, x.flip(0), target.flip(0), baseline="grey"), full.flip(0),
                               rtol=1e-4, atol=float32_atol(full))


# ---------------------------------------------------------------- reference parity (Captum)
@pytest.mark.parametrize("arch", ALL)
def test_deeplift_matches_captum(arch):
    """Ours on the model equals Captum's DeepLift (Rescale, eps=1e-10 both) on its Captum-compatible twin."""
    model, x, target = make_any_architecture(arch)
    model = without_overlapping_pools(model, x)      # Captum's max-pool rule cannot add overlapping windows
    reference = make_baseline(x, "uniform") * 0.5
    ours = deeplift(model, x, target, baseline=reference)
    theirs = DeepLift(captum_twin(model, x), eps=1e-10).attribute(x, baselines=reference, target=target)
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-5, atol=1e-6 * theirs.abs().max().item())
    assert ours.abs().max() > 0


@pytest.mark.parametrize("arch", ["mlp", "resnet_style"])
def test_deeplift_default_baseline_matches_captum(arch):
    model, x, target = make_any_architecture(arch)
    ours = deeplift(model, x, target)
    theirs = DeepLift(captum_twin(model, x)).attribute(x, target=target)
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-5, atol=1e-6 * theirs.abs().max().item())


@pytest.mark.parametrize("arch", ALL)
def test_deepshap_matches_captum(arch):
    model, x, target = make_any_architecture(arch)
    model = without_overlapping_pools(model, x)
    baselines = torch.rand(2, *x.shape[1:], generator=torch.Generator().manual_seed(7))
    ours = deepshap(model, x, target, baselines)
    theirs = DeepLiftShap(captum_twin(model, x)).attribute(x, baselines=baselines, target=target)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-5, atol=1e-6 * theirs.abs().max().item())


def test_deepshap_is_deeplift_averaged_over_the_references():
    model, x, target = make_architecture("resnet_style")
    baselines = torch.rand(4, *x.shape[1:], generator=torch.Generator().manual_seed(3))
    got = deepshap(model, x, target, baselines)
    mean = sum(deeplift(model, x, target, baseline=b) for b in baselines) / len(baselines)
    torch.testing.assert_close(got, mean, rtol=1e-5, atol=float32_atol(mean))
    torch.testing.assert_close(deepshap(model, x, target, baselines.double()), got)   # cast to the inputs' dtype
    with torch.no_grad():   # sums to t(x) - mean_b t(x'_b)
        expected = model(x).gather(1, target[:, None])[:, 0] - model(baselines)[:, target].mean(0)
    torch.testing.assert_close(got.flatten(1).sum(1), expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- baselines
def test_named_baselines_by_hand():
    x = torch.tensor([[[[0.2, 0.8], [0.4, 0.6]]], [[[-1.0, 1.0], [3.0, 0.0]]]])
    assert torch.equal(make_baseline(x), torch.zeros_like(x))
    assert torch.equal(make_baseline(x, "zeros"), torch.zeros_like(x))
    assert torch.equal(make_baseline(x, "black"), torch.zeros_like(x))  # black is 0.0 in the whole course
    torch.testing.assert_close(make_baseline(x, "min"), torch.tensor([0.2, -1.0]).view(2, 1, 1, 1).expand_as(x))
    torch.testing.assert_close(make_baseline(x, "white"), torch.tensor([0.8, 3.0]).view(2, 1, 1, 1).expand_as(x))
    torch.testing.assert_close(make_baseline(x, "grey"), torch.tensor([0.5, 1.0]).view(2, 1, 1, 1).expand_as(x))
    torch.testing.assert_close(make_baseline(x, 0.25), torch.full_like(x, 0.25))
    uniform = make_baseline(x, "uniform", seed=3)
    assert torch.equal(uniform, make_baseline(x, "uniform", seed=3))
    assert not torch.equal(uniform, make_baseline(x, "uniform", seed=4))
    assert (uniform[0] >= 0.2).all() and (uniform[0] <= 0.8).all()
    assert (uniform[1] >= -1).all() and (uniform[1] <= 3).all()


def test_blurred_baseline_keeps_flat_images_and_the_mean_colour():
    flat = torch.full((2, 3, 10, 12), 0.3)
    torch.testing.assert_close(make_baseline(flat, "blurred"), flat)
    x = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    blurred = make_baseline(x, "blurred")
    assert blurred.shape == x.shape
    assert blurred.std() < 0.5 * x.std()                                       # texture gone
    torch.testing.assert_close(blurred.mean((2, 3)), x.mean((2, 3)), atol=0.02, rtol=0)   # colours kept


@pytest.mark.parametrize("name", NAMES)
def test_every_baseline_name_means_its_tensor(name):
    model, x, target = make_architecture("resnet_style")
    by_name = deeplift(model, x, target, baseline=name)
    torch.testing.assert_close(by_name, deeplift(model, x, target, baseline=make_baseline(x, name)))
    _, delta = deeplift(model, x, target, baseline=name, return_delta=True)
    assert delta.abs().max() < 1e-5


def test_baseline_tensors_broadcast_from_one_input():
    model, x, target = make_architecture("resnet_style")
    one = torch.rand(*x.shape[1:], generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(deeplift(model, x, target, baseline=one),
                               deeplift(model, x, target, baseline=one.expand_as(x).clone()))
    torch.testing.assert_close(deeplift(model, x, target, baseline=one.double()),
                               deeplift(model, x, target, baseline=one))


def test_the_input_as_its_own_baseline_gives_zero():
    model, x, target = make_any_architecture("course_cnn")
    assert deeplift(model, x, target, baseline=x.clone()).abs().max() == 0


# ---------------------------------------------------------------- hygiene
DEEPLIFT_METHODS = {
    "deeplift": lambda m, x, t: deeplift(m, x, t, baseline="grey"),
    "deeplift_delta": lambda m, x, t: deeplift(m, x, t, return_delta=True)[0],
    "deepshap": lambda m, x, t: deepshap(m, x, t, torch.stack([torch.zeros_like(x[0]), x[0].detach() / 2])),
}


@pytest.mark.parametrize("arch, method", [(arch, "deeplift_delta") for arch in ALL]
                         + [("resnet_style", "deeplift"), ("resnet_style", "deepshap"), ("functional_cnn", "deepshap")])
def test_model_and_inputs_left_as_they_were(arch, method):
    model, x, target = make_any_architecture(arch)
    before, x_before = snapshot(model), inputs_snapshot(x)
    got = DEEPLIFT_METHODS[method](model, x, target)
    assert got.shape == x.shape and got.grad_fn is None and not got.requires_grad
    assert_unchanged(before, snapshot(model))
    assert_inputs_unchanged(x_before, x)


@pytest.mark.parametrize("method", sorted(DEEPLIFT_METHODS))
def test_train_mode_model_is_explained_in_eval_mode_and_restored(method):
    model, x, target = make_architecture("resnet_style")
    model.head_dropout = nn.Dropout(0.5)          # not used by forward; its mode must come back too
    expected = DEEPLIFT_METHODS[method](model, x, target)
    model.train()
    before = snapshot(model)
    with pytest.warns(UserWarning, match="train mode"):
        got = DEEPLIFT_METHODS[method](model, x, target)
    assert_unchanged(before, snapshot(model))
    assert model.training and model.head_dropout.training
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("method", sorted(DEEPLIFT_METHODS))
def test_works_under_no_grad(method):
    model, x, target = make_architecture("resnet_style")
    expected = DEEPLIFT_METHODS[method](model, x, target)
    with torch.no_grad():
        got = DEEPLIFT_METHODS[method](model, x, target)
    torch.testing.assert_close(got, expected)
    assert got.grad_fn is None


def test_inputs_that_require_grad_and_delta_without_graph():
    model, x, target = make_architecture("mlp")
    x.requires_grad_(True)
    before = inputs_snapshot(x)
    got, delta = deeplift(model, x, target, baseline="min", return_delta=True)
    assert_inputs_unchanged(before, x)
    assert got.grad_fn is None and delta.grad_fn is None


def test_model_restored_after_a_refusal_inside():
    model, x, target = make_architecture("resnet_style")
    model.train()
    before = snapshot(model)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="reveal_cancel"):
        deeplift(model, x, target, rule="reveal_cancel")
    assert_unchanged(before, snapshot(model))


def test_double_precision_matches_captum():
    model, x, target = make_any_architecture("course_cnn", n=1)
    model, x = model.double(), x.double()
    ours = deeplift(model, x, target)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, DeepLift(captum_twin(model, x)).attribute(x, target=target).detach())


def test_registry():
    assert METHODS["deeplift"] is deeplift and METHODS["deepshap"] is deepshap


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(rule="revealcancel"), ValueError, "rule must be one of 'rescale', 'reveal_cancel'"),
    (dict(rule=None), ValueError, "rule"),
    (dict(rule=["rescale"]), ValueError, "rule"),
    (dict(return_delta="yes"), TypeError, "return_delta"),
    (dict(baseline=torch.zeros(3)), ValueError, "baseline must have the shape of inputs"),
    (dict(baseline=torch.zeros(2, 10)), ValueError, "baseline"),
    (dict(baseline="pink"), ValueError, "baseline must be one of zeros, black"),
    (dict(baseline=[0.0] * 10), TypeError, "baseline"),
    (dict(baseline=True), TypeError, "baseline"),
    (dict(baseline=torch.zeros(10, dtype=torch.long)), TypeError, "baseline must be a floating-point"),
    (dict(baseline=torch.full((10,), float("nan"))), ValueError, "baseline must be finite"),
    (dict(baseline=float("inf")), ValueError, "baseline must be finite"),
    (dict(baseline="blurred"), ValueError, "baseline='blurred' needs images"),
])
def test_bad_deeplift_options(kwargs, error, words):
    model, x, _ = make_architecture("mlp")     # inputs (5, 10)
    with pytest.raises(error, match=words):
        deeplift(model, x, 0, **kwargs)


@pytest.mark.parametrize("baselines, error, words", [
    (None, (TypeError, ValueError), "baselines must be a tensor"),
    (torch.zeros(10), ValueError, r"baselines must be a tensor \(B, 10\)"),
    (torch.zeros(2, 9), ValueError, "baselines"),
    (torch.zeros(0, 10), ValueError, "at least one reference"),
    (torch.zeros(2, 10, dtype=torch.long), TypeError, "baselines must be a floating-point"),
    (torch.full((2, 10), float("inf")), ValueError, "baselines must be finite"),
])
def test_bad_deepshap_baselines(baselines, error, words):
    model, x, _ = make_architecture("mlp")
    with pytest.raises(error, match=words):
        deepshap(model, x, 0, baselines)


@pytest.mark.parametrize("method", ["deeplift", "deepshap"])
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(model="not a model"), TypeError, "model"),
    (dict(inputs=[[1.0] * 10]), TypeError, "inputs"),
    (dict(inputs=torch.ones(10)), ValueError, "inputs"),
    (dict(inputs=torch.ones(0, 10)), ValueError, "inputs"),
    (dict(inputs=torch.tensor([[float("nan")] * 10])), ValueError, "finite"),
    (dict(target=3), ValueError, "target"),
    (dict(target=-1), ValueError, "target"),
    (dict(target=None), TypeError, "target"),
    (dict(target=[0, 1]), ValueError, "target"),
    (dict(target=1.5), TypeError, "target"),
])
def test_bad_common_arguments(method, kwargs, error, words):
    model, x, _ = make_architecture("mlp")
    args = dict(model=model, inputs=x, target=0) | kwargs
    call = {"deeplift": lambda m, i, t: deeplift(m, i, t),
            "deepshap": lambda m, i, t: deepshap(m, i, t, torch.zeros(2, 10))}[method]
    with pytest.raises(error, match=words):
        call(args["model"], args["inputs"], args["target"])


def test_a_model_without_logits():
    class Scalar(nn.Module):
        def forward(self, x):
            return F.relu(x).sum()

    with pytest.raises(ValueError, match="logits"):
        deeplift(Scalar().eval(), torch.randn(3, 4), 0)


def test_inputs_on_another_device_than_the_model():
    model, x, t = make_architecture("mlp")
    with warnings.catch_warnings(), pytest.raises(ValueError, match="device|model is on"):
        warnings.simplefilter("ignore")
        deeplift(model.to("meta"), x, t)
