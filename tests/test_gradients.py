"""Chapter 1 and 2 methods: vanilla gradients (saliency) and gradient x input.

Known answers on hand-worked toys, Captum parity on every test architecture, hygiene and bad input.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from captum.attr import InputXGradient, Saliency
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import ARCHITECTURES, float32_atol, make_architecture
from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from xai_course.attribution import METHODS, input_x_gradient, saliency
from xai_course.models import Circle, Saturating

GRADIENT_METHODS = {"saliency": saliency, "input_x_gradient": input_x_gradient}
coordinates = st.floats(-10, 10, allow_nan=False, width=32)


# ---------------------------------------------------------------- known answers
@settings(max_examples=50, deadline=None)
@given(x=coordinates, y=coordinates)
def test_circle_gradient_is_2x_2y(x, y):
    xy = torch.tensor([[x, y]])
    torch.testing.assert_close(saliency(Circle(), xy, 0, abs=False), 2 * xy)
    torch.testing.assert_close(saliency(Circle(), xy, 0), (2 * xy).abs())
    torch.testing.assert_close(input_x_gradient(Circle(), xy, 0), 2 * xy**2)


def test_circle_gradient_points_outwards_and_grows_with_distance():
    xy = torch.tensor([[3.0, 0.0], [0.0, -1.0], [6.0, 8.0]])
    g = saliency(Circle(), xy, 0, abs=False)
    assert (torch.nn.functional.cosine_similarity(g, xy) > 0.999).all()
    assert torch.allclose(g.norm(dim=1), 2 * xy.norm(dim=1))


@pytest.mark.parametrize("i1, i2, expected", [
    (0.2, 0.3, (1.0, 1.0)),   # below the kink: y = i1 + i2, gradient (1, 1)
    (0.0, 0.0, (1.0, 1.0)),
    (1.0, 1.0, (0.0, 0.0)),   # the lecture's point: y = 1 but the gradient is zero
    (0.7, 0.6, (0.0, 0.0)),
    (3.0, -1.5, (0.0, 0.0)),
])
def test_saturating_toy_gradient(i1, i2, expected):
    i = torch.tensor([[i1, i2]])
    toy = Saturating()
    assert toy(i).item() == pytest.approx(min(1.0, i1 + i2))
    torch.testing.assert_close(saliency(toy, i, 0, abs=False), torch.tensor([expected]))


def test_saturation_gradient_x_input_misses_the_output():
    """At (1, 1) the output rose from y(0) = 0 to 1, yet gradient x input attributes nothing."""
    toy, i = Saturating(), torch.tensor([[1.0, 1.0], [0.25, 0.5]])
    a = input_x_gradient(toy, i, 0)
    assert a[0].abs().sum() == 0
    torch.testing.assert_close(a[1].sum(), toy(i)[1, 0] - toy(torch.zeros(1, 2))[0, 0])  # linear region: complete


def test_saturating_toy_perturbing_one_input_changes_nothing():
    toy = Saturating()
    y = toy(torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]]))[:, 0]
    assert torch.equal(y, torch.ones(3))


def test_gradient_is_class_specific_on_a_linear_model():
    model = nn.Linear(3, 2).eval()
    x = torch.randn(4, 3)
    for c in range(2):
        torch.testing.assert_close(saliency(model, x, c, abs=False), model.weight[c].detach().expand(4, 3))


# ---------------------------------------------------------------- reference parity (Captum)
@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("abs_", [True, False])
def test_saliency_matches_captum(arch, abs_):
    model, x, target = make_architecture(arch)
    ours = saliency(model, x, target, abs=abs_)
    theirs = Saliency(model).attribute(x, target=target, abs=abs_)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=float32_atol(theirs))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_input_x_gradient_matches_captum(arch):
    model, x, target = make_architecture(arch)
    ours = input_x_gradient(model, x, target)
    theirs = InputXGradient(model).attribute(x, target=target)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=float32_atol(theirs))


@pytest.mark.parametrize("target_form", ["int", "list", "tensor", "tensor0d", "numpy", "numpy_int"])
def test_target_forms_agree(target_form):
    import numpy as np

    model, x, _ = make_architecture("mlp")
    target = {"int": 2, "list": [2] * len(x), "tensor": torch.full((len(x),), 2), "tensor0d": torch.tensor(2),
              "numpy": np.full(len(x), 2), "numpy_int": np.int64(2)}
    expected = Saliency(model).attribute(x, target=2, abs=False)
    torch.testing.assert_close(saliency(model, x, target[target_form], abs=False), expected)


def test_double_precision_inputs():
    model, x, target = make_architecture("mlp")
    model = model.double()
    ours = saliency(model, x.double(), target, abs=False)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, Saliency(model).attribute(x.double(), target=target, abs=False))


# ---------------------------------------------------------------- hygiene
@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("method", sorted(GRADIENT_METHODS))
def test_model_and_inputs_left_as_they_were(arch, method):
    model, x, target = make_architecture(arch)
    before, x_before = snapshot(model), inputs_snapshot(x)
    GRADIENT_METHODS[method](model, x, target)
    assert_unchanged(before, snapshot(model))
    assert_inputs_unchanged(x_before, x)


@pytest.mark.parametrize("method", sorted(GRADIENT_METHODS))
def test_train_mode_model_is_explained_in_eval_mode_and_restored(method):
    model, x, target = make_architecture("course_resnet")
    expected = GRADIENT_METHODS[method](model, x, target)
    model.train()
    model.classifier_dropout = nn.Dropout(0.5)  # an extra module in train mode must come back so
    before = snapshot(model)
    with pytest.warns(UserWarning, match="train mode"):
        got = GRADIENT_METHODS[method](model, x, target)
    assert_unchanged(before, snapshot(model))  # running statistics untouched, train mode restored
    assert model.training and model.classifier_dropout.training
    torch.testing.assert_close(got, expected)


def test_dropout_is_not_sampled():
    model, x, target = make_architecture("course_cnn")  # has dropout in its classifier
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = [saliency(model, x, target, abs=False) for _ in range(3)]
    assert all(torch.equal(runs[0], r) for r in runs[1:])


@pytest.mark.parametrize("method", sorted(GRADIENT_METHODS))
def test_works_under_no_grad_and_returns_no_graph(method):
    model, x, target = make_architecture("resnet_style")
    expected = GRADIENT_METHODS[method](model, x, target)
    with torch.no_grad():
        got = GRADIENT_METHODS[method](model, x, target)
    torch.testing.assert_close(got, expected)
    assert not got.requires_grad and got.grad_fn is None


def test_inputs_that_require_grad_are_left_alone():
    model, x, target = make_architecture("mlp")
    x.requires_grad_(True)
    before = inputs_snapshot(x)
    a = input_x_gradient(model, x, target)
    assert_inputs_unchanged(before, x)
    assert a.grad_fn is None


class DoublesItsInputInPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        x.mul_(2)
        return self.linear(x)


def test_a_model_that_modifies_its_input_in_place():
    model, x = DoublesItsInputInPlace().eval(), torch.randn(4, 3)
    before = inputs_snapshot(x)
    torch.testing.assert_close(saliency(model, x, 1, abs=False), 2 * model.linear.weight[1].detach().expand(4, 3))
    assert_inputs_unchanged(before, x)


class FunctionalReLUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_functional_relu_matches_captum():
    torch.manual_seed(3)
    model, x = FunctionalReLUNet().eval(), torch.randn(5, 6)
    torch.testing.assert_close(saliency(model, x, 2, abs=False), Saliency(model).attribute(x, target=2, abs=False))


def test_parameters_that_did_not_require_grad_stay_so():
    model, x, target = make_architecture("mlp")
    model[0].weight.requires_grad_(False)
    saliency(model, x, target)
    assert not model[0].weight.requires_grad and model[2].weight.requires_grad


def test_model_restored_after_an_error_inside():
    model, x, _ = make_architecture("resnet_style")
    model.train()
    before = snapshot(model)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="target"):
        saliency(model, x, 99)
    assert_unchanged(before, snapshot(model))


def test_registry_names_the_functions():
    assert METHODS["saliency"] is saliency and METHODS["input_x_gradient"] is input_x_gradient
    for name, fn in METHODS.items():
        assert fn.__doc__, f"{name} has no docstring"


# ---------------------------------------------------------------- bad input
class NoLogits(nn.Module):
    def forward(self, x):
        return x.sum()


class TupleOut(nn.Module):
    def forward(self, x):
        return (x, x)


@pytest.mark.parametrize("method", sorted(GRADIENT_METHODS))
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(model="not a model"), TypeError, "model"),
    (dict(inputs=[[1.0, 2.0]]), TypeError, "inputs"),
    (dict(inputs=torch.ones(3, 10, dtype=torch.long)), TypeError, "inputs"),
    (dict(inputs=torch.ones(10)), ValueError, "inputs"),
    (dict(inputs=torch.ones(0, 10)), ValueError, "inputs"),
    (dict(inputs=torch.tensor([[float("nan")] * 10])), ValueError, "finite"),
    (dict(target=3), ValueError, "target"),
    (dict(target=-1), ValueError, "target"),
    (dict(target=1.5), TypeError, "target"),
    (dict(target=None), TypeError, "target"),
    (dict(target=True), TypeError, "target"),
    (dict(target=[0, 1]), ValueError, "target"),
    (dict(target=torch.zeros(2, 2, dtype=torch.long)), ValueError, "target"),
    (dict(target=torch.tensor([0.0])), TypeError, "target"),
    (dict(target="cat"), TypeError, "target"),
    (dict(model=NoLogits().eval()), ValueError, "logits"),
    (dict(model=TupleOut().eval()), ValueError, "logits"),
])
def test_bad_input_gives_a_clear_error(method, kwargs, error, words):
    model, x, _ = make_architecture("mlp")  # 3 classes, inputs (5, 10)
    args = dict(model=model, inputs=x, target=0) | kwargs
    with pytest.raises(error, match=words):
        GRADIENT_METHODS[method](args["model"], args["inputs"], args["target"])


def test_bad_abs_flag():
    model, x, t = make_architecture("mlp")
    with pytest.raises(TypeError, match="abs"):
        saliency(model, x, t, abs="yes")


def test_inputs_on_another_device_than_the_model():
    model, x, t = make_architecture("mlp")
    with pytest.raises(ValueError, match="device|model is on"):
        saliency(model.to("meta"), x, t)
