"""Chapter 13: guided backpropagation, the gradient through "guided" ReLUs.

A known answer worked by hand, Captum parity (GuidedBackprop) on every architecture, hygiene and bad input.
"""
from __future__ import annotations

import pytest
import torch
from captum.attr import GuidedBackprop
from torch import nn

from conftest import ARCHITECTURES, float32_atol, make_architecture
from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from reference_twins import (EXTRA_ARCHITECTURES, assert_matches_captum_rule, assert_matches_captum_rule_in_double,
                              make_any_architecture)
from xai_course.attribution import METHODS, guided_backprop, saliency
from xai_course.models import Saturating

ALL = ARCHITECTURES + EXTRA_ARCHITECTURES


# ---------------------------------------------------------------- known answers
class TwoReLULayers(nn.Module):
    """h = ReLU(W1 x), g = ReLU(W2 h), y = W3 g, no biases, with the weights below."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2 = nn.Linear(2, 3, bias=False), nn.Linear(3, 2, bias=False)
        self.l3 = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.l1.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0], [-1.0, 1.0]]))
            self.l2.weight.copy_(torch.tensor([[1.0, -1.0, 2.0], [1.0, 1.0, 0.0]]))
            self.l3.weight.copy_(torch.tensor([[1.0, -2.0], [-1.0, 1.0]]))

    def forward(self, x):
        return self.l3(torch.relu(self.l2(torch.relu(self.l1(x)))))


def test_guided_backprop_by_hand():
    # x = (2, 1): W1 x = (1, 5, -1) -> h = (1, 5, 0), mask (1, 1, 0);
    #             W2 h = (1 - 5, 1 + 5) = (-4, 6) -> g = (0, 6), mask (0, 1).
    # class 0, signal at g = W3[0] = (1, -2):
    #   gradient: (1, -2)·(0, 1) = (0, -2) -> at h: W2^T (0, -2) = (-2, -2, 0), masked (-2, -2, 0)
    #             -> at x: W1^T (-2, -2, 0) = (-2 - 4, 2 - 2) = (-6, 0)
    #   guided:   max(0, (1, -2))·(0, 1) = (0, 0) -> nothing gets through: (0, 0)
    # class 1, signal at g = W3[1] = (-1, 1):
    #   gradient: (0, 1) -> at h: W2^T (0, 1) = (1, 1, 0), masked (1, 1, 0) -> W1^T (1, 1, 0) = (3, 0)
    #   guided:   max(0, (-1, 1))·(0, 1) = (0, 1) -> (1, 1, 0) -> max(0, ·)·mask = (1, 1, 0) -> (3, 0)
    model, x = TwoReLULayers().eval(), torch.tensor([[2.0, 1.0], [2.0, 1.0]])
    target = torch.tensor([0, 1])
    torch.testing.assert_close(saliency(model, x, target, abs=False), torch.tensor([[-6.0, 0.0], [3.0, 0.0]]))
    torch.testing.assert_close(guided_backprop(model, x, target), torch.tensor([[0.0, 0.0], [3.0, 0.0]]))


def test_guided_backprop_clips_negative_signal_at_the_first_relu_too():
    # class 1 at x = (1, -1): W1 x = (2, 1, -2) -> h = (2, 1, 0); W2 h = (1, 3) -> g = (1, 3), both on.
    # signal at g: (-1, 1) -> guided (0, 1) -> at h: W2^T (0, 1) = (1, 1, 0) -> x: W1^T (1, 1, 0) = (3, 0).
    #          (The gradient: W2^T (-1, 1) = (0, 2, -2) -> masked (0, 2, 0) -> W1^T = (4, 2).)
    # class 0: signal (1, -2) -> guided (1, 0) -> at h: W2^T (1, 0) = (1, -1, 2) -> max(0, ·)·(1, 1, 0)
    #          = (1, 0, 0) -> W1^T (1, 0, 0) = (1, -1). (The gradient: W2^T (1, -2) = (-1, -3, 2) -> masked
    #          (-1, -3, 0) -> W1^T = (-7, -2).)
    model, x = TwoReLULayers().eval(), torch.tensor([[1.0, -1.0], [1.0, -1.0]])
    torch.testing.assert_close(guided_backprop(model, x, [1, 0]), torch.tensor([[3.0, 0.0], [1.0, -1.0]]))
    torch.testing.assert_close(saliency(model, x, [1, 0], abs=False), torch.tensor([[4.0, 2.0], [-7.0, -2.0]]))


def test_saturating_toy_gets_nothing():
    """dy/dh = -1 < 0 at the only ReLU: guided backprop passes nothing, wherever the ReLU is on."""
    toy = Saturating()
    x = torch.tensor([[0.2, 0.3], [1.0, 1.0], [-2.0, 0.5]])
    assert guided_backprop(toy, x, 0).abs().max() == 0
    assert saliency(toy, x, 0).abs().max() > 0


def test_without_relus_it_is_the_gradient():
    model, x, target = make_any_architecture("sigmoid_cnn")
    torch.testing.assert_close(guided_backprop(model, x, target), saliency(model, x, target, abs=False))


def test_a_positive_linear_head_on_positive_features_agrees_with_the_gradient():
    """All signals non-negative: guided backprop and the gradient coincide."""
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).eval()
    with torch.no_grad():
        model[2].weight.abs_()
    x = torch.randn(5, 4)
    torch.testing.assert_close(guided_backprop(model, x, 1), saliency(model, x, 1, abs=False))


# ---------------------------------------------------------------- reference parity (Captum)
@pytest.mark.parametrize("arch", ALL)
def test_matches_captum(arch):
    assert_matches_captum_rule(guided_backprop, GuidedBackprop, arch)


def test_double_precision_matches_captum():
    assert_matches_captum_rule_in_double(guided_backprop, GuidedBackprop)


def test_batch_independence_and_determinism():
    model, x, target = make_any_architecture("course_cnn", n=3)
    full = guided_backprop(model, x, target)
    assert torch.equal(full, guided_backprop(model, x, target))
    for i in range(3):
        torch.testing.assert_close(guided_backprop(model, x[i:i + 1], target[i:i + 1]), full[i:i + 1],
                                   rtol=1e-5, atol=float32_atol(full))


# ---------------------------------------------------------------- hygiene
@pytest.mark.parametrize("arch", ALL)
def test_model_and_inputs_left_as_they_were(arch):
    model, x, target = make_any_architecture(arch)
    before, x_before = snapshot(model), inputs_snapshot(x)
    got = guided_backprop(model, x, target)
    assert got.grad_fn is None and not got.requires_grad
    assert_unchanged(before, snapshot(model))
    assert_inputs_unchanged(x_before, x)


def test_train_mode_model_is_explained_in_eval_mode_and_restored():
    model, x, target = make_architecture("resnet_style")
    expected = guided_backprop(model, x, target)
    model.train()
    model.spare = nn.Dropout(0.5)
    before = snapshot(model)
    with pytest.warns(UserWarning, match="train mode"):
        got = guided_backprop(model, x, target)
    assert_unchanged(before, snapshot(model))
    assert model.training and model.spare.training
    torch.testing.assert_close(got, expected)


def test_works_under_no_grad_and_leaves_grad_inputs_alone():
    model, x, target = make_architecture("resnet_style")
    expected = guided_backprop(model, x, target)
    with torch.no_grad():
        got = guided_backprop(model, x, target)
    torch.testing.assert_close(got, expected)
    x.requires_grad_(True)
    before = inputs_snapshot(x)
    torch.testing.assert_close(guided_backprop(model, x, target), expected)
    assert_inputs_unchanged(before, x)


def test_model_restored_after_an_error_inside():
    model, x, _ = make_architecture("resnet_style")
    model.train()
    before = snapshot(model)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="target"):
        guided_backprop(model, x, 99)
    assert_unchanged(before, snapshot(model))
    assert torch._C._len_torch_function_stack() == 0


def test_registry():
    assert METHODS["guided_backprop"] is guided_backprop


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(model="not a model"), TypeError, "model"),
    (dict(model=nn.Linear(10, 3).eval), TypeError, "model"),
    (dict(inputs=[[1.0] * 10]), TypeError, "inputs"),
    (dict(inputs=torch.ones(3, 10, dtype=torch.long)), TypeError, "inputs"),
    (dict(inputs=torch.ones(10)), ValueError, "inputs"),
    (dict(inputs=torch.ones(0, 10)), ValueError, "inputs"),
    (dict(inputs=torch.tensor([[float("inf")] * 10])), ValueError, "finite"),
    (dict(target=3), ValueError, "target"),
    (dict(target=-1), ValueError, "target"),
    (dict(target=None), TypeError, "target"),
    (dict(target=True), TypeError, "target"),
    (dict(target="cat"), TypeError, "target"),
    (dict(target=[0, 1]), ValueError, "target"),
    (dict(target=torch.tensor([0.0])), TypeError, "target"),
])
def test_bad_input_gives_a_clear_error(kwargs, error, words):
    model, x, _ = make_architecture("mlp")     # 3 classes, inputs (5, 10)
    args = dict(model=model, inputs=x, target=0) | kwargs
    with pytest.raises(error, match=words):
        guided_backprop(args["model"], args["inputs"], args["target"])


def test_a_model_that_returns_no_logits():
    class Flat(nn.Module):
        def forward(self, x):
            return torch.relu(x).sum(1)

    with pytest.raises(ValueError, match="logits"):
        guided_backprop(Flat().eval(), torch.randn(3, 4), 0)
