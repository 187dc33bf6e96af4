"""Chapter 11: DeConvNet, the signal through "deconvolution" ReLUs, from a class or from one feature map.

Known answers worked by hand, the first-layer projection as conv_transpose2d, Captum parity
(Deconvolution) on every architecture, hygiene and bad input.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import Deconvolution
from torch import nn

from conftest import ARCHITECTURES, make_architecture
from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from reference_twins import (EXTRA_ARCHITECTURES, assert_matches_captum_rule, assert_matches_captum_rule_in_double,
                              make_any_architecture)
from test_guided_backprop import TwoReLULayers
from xai_course import models
from xai_course.attribution import METHODS, deconvnet, guided_backprop, saliency

ALL = ARCHITECTURES + EXTRA_ARCHITECTURES


# ---------------------------------------------------------------- known answers
def test_deconvnet_by_hand():
    # TwoReLULayers at x = (2, 1): W1 x = (1, 5, -1), W2 h = (-4, 6) (see test_guided_backprop).
    # class 1, signal at g = W3[1] = (-1, 1): DeConvNet clamps, ignores the ReLU's input:
    #   max(0, (-1, 1)) = (0, 1) -> at h: W2^T (0, 1) = (1, 1, 0) -> max(0, .) = (1, 1, 0)
    #   -> at x: W1^T (1, 1, 0) = (1 + 2, -1 + 1) = (3, 0)
    # class 0, signal (1, -2) -> (1, 0), although g's first unit is off (W2 h = -4)
    #   -> W2^T (1, 0) = (1, -1, 2) -> max(0, .) = (1, 0, 2) -> W1^T (1, 0, 2) = (1 - 2, -1 + 2) = (-1, 1)
    #   (guided backprop masks with g's ReLU: (1, 0) * (0, 1) = 0, nothing gets through)
    model, x = TwoReLULayers().eval(), torch.tensor([[2.0, 1.0], [2.0, 1.0]])
    torch.testing.assert_close(deconvnet(model, x, [1, 0]), torch.tensor([[3.0, 0.0], [-1.0, 1.0]]))
    torch.testing.assert_close(guided_backprop(model, x, [1, 0]), torch.tensor([[3.0, 0.0], [0.0, 0.0]]))


def test_it_does_not_depend_on_which_relus_are_on():
    """Only max-pooling switches depend on the input: a ReLU MLP's DeConvNet map is the same everywhere."""
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x = torch.randn(6, 5) * 3
    maps = deconvnet(model, x, 2)
    torch.testing.assert_close(maps, maps[:1].expand_as(maps))
    assert not torch.allclose(saliency(model, x, 2, abs=False), saliency(model, x[:1], 2, abs=False).expand(6, 5))


@pytest.mark.parametrize("padding, stride", [(1, 1), (0, 1), (2, 2)])
def test_first_layer_projection_is_conv_transpose(padding, stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 5, 3, padding=padding, stride=stride)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.LazyLinear(3)).eval()
    x = torch.randn(3, 2, 11, 11)
    model(x)
    for channel in (0, 3):
        got = deconvnet(model, x, layer="0", channel=channel)
        a = F.conv2d(x, conv.weight, conv.bias, stride=stride, padding=padding)[:, channel:channel + 1]
        expected = F.conv_transpose2d(a, conv.weight[channel:channel + 1], stride=stride, padding=padding,
                                      output_padding=(11 + 2 * padding - 3) % stride)
        assert got.shape == x.shape
        torch.testing.assert_close(got, expected.detach())


def test_projection_through_relu_and_pooling():
    """A layer above the first: by hand, A = relu(conv1(x)) pooled, then conv2's channel sent back."""
    model = models.load("digits_cnn")
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    c1, c2 = model.features[0], model.features[3]
    a1 = F.conv2d(x, c1.weight, c1.bias, padding=1)
    p1, switches = F.max_pool2d(F.relu(a1), 2, return_indices=True)
    a2 = F.conv2d(p1, c2.weight, c2.bias, padding=1)[:, 4:5]
    r = F.conv_transpose2d(a2, c2.weight[4:5], padding=1)                     # transposed filters
    r = F.max_unpool2d(r, switches, 2, output_size=a1.shape[2:])              # switches
    r = F.conv_transpose2d(r.clamp(min=0), c1.weight, padding=1)              # ReLU: max(0, signal)
    got = deconvnet(model, x, layer=c2, channel=4)
    torch.testing.assert_close(got, r.detach(), rtol=1e-5, atol=1e-6 * r.abs().max().item())
    torch.testing.assert_close(deconvnet(model, x, layer="features.3", channel=4), got)


def test_projection_of_a_relu_layer_clamps_first():
    model = models.load("digits_cnn")
    x = torch.rand(2, 1, 16, 16)
    # the ReLU's output is >= 0, so max(0, signal) changes nothing and the result is conv1's projection
    # of relu(A) instead of A
    got = deconvnet(model, x, layer="features.1", channel=2)
    c1 = model.features[0]
    a = F.relu(F.conv2d(x, c1.weight, c1.bias, padding=1))[:, 2:3]
    torch.testing.assert_close(got, F.conv_transpose2d(a, c1.weight[2:3], padding=1).detach())


# ---------------------------------------------------------------- reference parity (Captum)
@pytest.mark.parametrize("arch", ALL)
def test_matches_captum(arch):
    assert_matches_captum_rule(deconvnet, Deconvolution, arch)


def test_double_precision_matches_captum():
    assert_matches_captum_rule_in_double(deconvnet, Deconvolution)


def test_batch_independence_and_determinism():
    model, x, target = make_any_architecture("course_cnn", n=3)
    full = deconvnet(model, x, target)
    assert torch.equal(full, deconvnet(model, x, target))
    for i in range(3):
        torch.testing.assert_close(deconvnet(model, x[i:i + 1], target[i:i + 1]), full[i:i + 1],
                                   rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- hygiene
@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("mode", ["target", "layer"])
def test_model_and_inputs_left_as_they_were(arch, mode):
    model, x, target = make_any_architecture(arch)
    layer = next(n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    before, x_before = snapshot(model), inputs_snapshot(x)
    got = deconvnet(model, x, target) if mode == "target" else deconvnet(model, x, layer=layer, channel=1)
    assert got.shape == x.shape and got.grad_fn is None and not got.requires_grad
    assert_unchanged(before, snapshot(model))
    assert_inputs_unchanged(x_before, x)
    assert torch._C._len_torch_function_stack() == 0


def test_train_mode_model_is_explained_in_eval_mode_and_restored():
    model, x, target = make_architecture("resnet_style")
    expected = deconvnet(model, x, target), deconvnet(model, x, layer="conv2", channel=3)
    model.train()
    before = snapshot(model)
    with pytest.warns(UserWarning, match="train mode"):
        got = deconvnet(model, x, target)
    with pytest.warns(UserWarning, match="train mode"):
        got_layer = deconvnet(model, x, layer="conv2", channel=3)
    assert_unchanged(before, snapshot(model))
    assert model.training
    torch.testing.assert_close(got, expected[0])
    torch.testing.assert_close(got_layer, expected[1])


def test_works_under_no_grad():
    model, x, target = make_architecture("resnet_style")
    expected = deconvnet(model, x, target), deconvnet(model, x, layer="bn1", channel=0)
    with torch.no_grad():
        torch.testing.assert_close(deconvnet(model, x, target), expected[0])
        torch.testing.assert_close(deconvnet(model, x, layer="bn1", channel=0), expected[1])


def test_registry():
    assert METHODS["deconvnet"] is deconvnet


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(model="not a model"), TypeError, "model"),
    (dict(inputs=torch.ones(10)), ValueError, "inputs"),
    (dict(inputs=torch.tensor([[float("nan")] * 10])), ValueError, "finite"),
    (dict(target=3), ValueError, "target"),
    (dict(target=None), TypeError, "target"),
    (dict(target=0, layer="0", channel=1), ValueError, "either target"),
    (dict(target=None, layer="0"), ValueError, "channel"),
    (dict(target=None, channel=1), ValueError, "layer"),
    (dict(target=None, layer="9", channel=1), ValueError, "layer"),
    (dict(target=None, layer=nn.Linear(10, 16), channel=1), ValueError, "layer"),
    (dict(target=None, layer=3, channel=1), TypeError, "layer"),
    (dict(target=None, layer="0", channel=16), ValueError, "channel"),
    (dict(target=None, layer="0", channel=-1), ValueError, "channel"),
    (dict(target=None, layer="0", channel=1.0), TypeError, "channel"),
    (dict(target=None, layer="0", channel=True), TypeError, "channel"),
])
def test_bad_input_gives_a_clear_error(kwargs, error, words):
    model, x, _ = make_architecture("mlp")     # 3 classes, inputs (5, 10); layer "0" has 16 outputs
    args = dict(model=model, inputs=x, target=0) | kwargs
    with pytest.raises(error, match=words):
        deconvnet(args.pop("model"), args.pop("inputs"), **args)


def test_a_layer_that_does_not_run():
    class Spare(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Linear(4, 3), nn.Linear(4, 4)

        def forward(self, x):
            return self.used(x)

    model = Spare().eval()
    with pytest.raises(ValueError, match="did not run"):
        deconvnet(model, torch.randn(2, 4), layer="spare", channel=0)
