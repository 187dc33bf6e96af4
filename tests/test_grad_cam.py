"""Chapter 13: Grad-CAM and guided Grad-CAM.

A known answer (a global-average-pool + linear head, where Grad-CAM is the class activation map divided by
h·w), Captum parity (LayerGradCam with and without ReLU on raw maps, GuidedGradCam bilinear) on the conv
architectures with layers given by name and by module, upsampling, layer errors, hygiene and bad input.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import GuidedGradCam, LayerGradCam
from torch import nn

from conftest import ARCHITECTURES, make_architecture
from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from reference_twins import EXTRA_ARCHITECTURES, captum_twin, grad_cam_layer, make_any_architecture
from xai_course.attribution import METHODS, grad_cam, guided_backprop, guided_grad_cam

ALL = ARCHITECTURES + EXTRA_ARCHITECTURES
# besides the layer picked automatically (the last feature maps), one chosen by hand: an earlier layer,
# often in an in-place / BatchNorm neighbourhood
LAYERS = {"course_cnn": "features.6", "resnet_style": "bn1", "course_resnet": "layer2.bn1",
          "torchvision_resnet18": "layer3.1.bn2", "functional_cnn": "conv1", "sigmoid_cnn": "act1"}
CASES = [(arch, None) for arch in ALL] + [(arch, LAYERS[arch]) for arch in ALL if arch in LAYERS]


def resolve(model, x, layer):
    """The layer's name (None: picked automatically as the last feature-map layer) and module."""
    name = grad_cam_layer(model, x) if layer is None else layer
    return name, model.get_submodule(name)


def refused_without_feature_maps(model, x, target) -> bool:
    """For a model of flat inputs (N, D) (the MLP): check that Grad-CAM refuses each of its layers, clearly."""
    if x.ndim == 4:
        return False
    for name, _ in list(model.named_modules())[1:]:
        with pytest.raises(ValueError, match=r"layer must output feature maps|it ran 0 times"):
            grad_cam(model, x, target, name)
    return True


# ---------------------------------------------------------------- known answer
class GapHead(nn.Module):
    """maps -> global average pool -> linear: the architecture of CAM (Zhou et al., 2016)."""

    def __init__(self, weight, bias):
        super().__init__()
        self.maps = nn.Identity()
        self.fc = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(weight)
            self.fc.bias.copy_(bias)

    def forward(self, x):
        return self.fc(self.maps(x).mean((2, 3)))


def test_grad_cam_of_a_gap_linear_head_by_hand():
    # y_c = Σ_k w_ck mean_ij A^k_ij + b_c, so dy_c/dA^k_ij = w_ck / (h w) and α_k = w_ck / (h w):
    # Grad-CAM = ReLU(Σ_k w_ck A^k) / (h w), the class activation map over h w = 4.
    # A^1 = [[1, -2], [3, 0]], A^2 = [[0, 1], [1, -1]], w_0 = (2, -1), w_1 = (-1, 3):
    #   class 0: 2 A^1 - A^2 = [[2, -5], [5, 1]]  -> ReLU / 4 = [[0.5, 0], [1.25, 0.25]]
    #   class 1: -A^1 + 3 A^2 = [[-1, 5], [0, -3]] -> ReLU / 4 = [[0, 1.25], [0, 0]]
    weight, bias = torch.tensor([[2.0, -1.0], [-1.0, 3.0]]), torch.tensor([0.5, -7.0])
    model = GapHead(weight, bias).eval()
    a = torch.tensor([[[1.0, -2.0], [3.0, 0.0]], [[0.0, 1.0], [1.0, -1.0]]])
    x = torch.stack([a, a])
    got = grad_cam(model, x, [0, 1], "maps", upsample=False)
    torch.testing.assert_close(got, torch.tensor([[[[0.5, 0.0], [1.25, 0.25]]], [[[0.0, 1.25], [0.0, 0.0]]]]))
    raw = grad_cam(model, x, [0, 1], model.maps, relu=False)
    torch.testing.assert_close(raw, torch.tensor([[[[2.0, -5.0], [5.0, 1.0]]], [[[-1.0, 5.0], [0.0, -3.0]]]]) / 4)


def test_grad_cam_is_cam_on_a_trained_style_cnn():
    """Any conv trunk with a GAP + linear head: Grad-CAM of the trunk's output = ReLU(Σ_k w_ck A^k) / (h w)."""
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(5, 6, 3, padding=1),
                          nn.ReLU())
    head = nn.Linear(6, 4)
    model = nn.Sequential(trunk, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()
    x, target = torch.rand(3, 3, 12, 12), torch.tensor([3, 0, 2])
    with torch.no_grad():
        maps = trunk(x)                                                     # (3, 6, 6, 6)
    cam = torch.einsum("nk,nkij->nij", head.weight[target].detach(), maps)[:, None].clamp(min=0) / 36
    torch.testing.assert_close(grad_cam(model, x, target, "0", upsample=False), cam)
    torch.testing.assert_close(grad_cam(model, x, target, trunk),
                               F.interpolate(cam, size=(12, 12), mode="bilinear", align_corners=False))


# ---------------------------------------------------------------- reference parity (Captum)
@pytest.mark.parametrize("arch, layer", CASES)
@pytest.mark.parametrize("relu", [True, False])
def test_raw_maps_match_captum_layer_grad_cam(arch, layer, relu):
    model, x, target = make_any_architecture(arch)
    if refused_without_feature_maps(model, x, target):
        return
    name, module = resolve(model, x, layer)
    theirs = LayerGradCam(model, module).attribute(x, target=target, relu_attributions=relu)
    ours = grad_cam(model, x, target, name if relu else module, relu=relu, upsample=False)   # by name, by module
    assert ours.shape == theirs.shape and ours.shape[1] == 1
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6 * theirs.abs().max().item())
    assert theirs.abs().max() > 0


def test_a_layer_by_name_is_the_layer_as_a_module():
    model, x, target = make_any_architecture("course_resnet")
    for name in ("layer2.conv1", "layer3", "stem.1"):
        assert torch.equal(grad_cam(model, x, target, name), grad_cam(model, x, target, model.get_submodule(name)))


@pytest.mark.parametrize("arch, layer", [(arch, None) for arch in ALL] + [("resnet_style", "bn1")])
def test_guided_grad_cam_matches_captum(arch, layer):
    model, x, target = make_any_architecture(arch, n=1)
    if refused_without_feature_maps(model, x, target):
        return
    name, module = resolve(model, x, layer)
    ours = guided_grad_cam(model, x, target, name)
    assert ours.shape == x.shape
    twin, twin_layer = captum_twin(model, x, module)     # functional ReLUs as modules, one module per call
    theirs = GuidedGradCam(twin, twin_layer).attribute(x, target=target, interpolate_mode="bilinear")
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6 * theirs.abs().max().item())
    torch.testing.assert_close(ours, guided_backprop(model, x, target) * grad_cam(model, x, target, module))


# ---------------------------------------------------------------- upsampling
@pytest.mark.parametrize("arch", ALL)
def test_upsampled_map_has_the_input_size(arch):
    model, x, target = make_any_architecture(arch, n=1)
    if refused_without_feature_maps(model, x, target):
        return
    name = grad_cam_layer(model, x)
    raw = grad_cam(model, x, target, name, upsample=False)
    up = grad_cam(model, x, target, name)
    assert up.shape == (x.shape[0], 1, *x.shape[2:])
    assert raw.shape[:2] == (x.shape[0], 1) and raw.shape[2:] != x.shape[2:]
    torch.testing.assert_close(up, F.interpolate(raw, size=x.shape[2:], mode="bilinear", align_corners=False))
    assert up.min() >= 0                                       # bilinear weights are convex: ReLU survives


def test_a_layer_at_input_resolution_is_not_resampled():
    model, x, target = make_architecture("resnet_style")      # conv2 keeps 16 x 16
    raw = grad_cam(model, x, target, "conv2", upsample=False)
    assert raw.shape == (x.shape[0], 1, 16, 16)
    assert torch.equal(grad_cam(model, x, target, "conv2"), raw)


def test_non_square_inputs():
    model, x, target = make_any_architecture("functional_cnn")
    x = torch.rand(2, 3, 8, 12)
    up = grad_cam(model, x, target, "conv2")
    assert up.shape == (2, 1, 8, 12)
    torch.testing.assert_close(up, F.interpolate(grad_cam(model, x, target, "conv2", upsample=False), size=(8, 12),
                                                 mode="bilinear", align_corners=False))


def test_class_sensitivity():
    """Different classes, different maps (the point of Grad-CAM over guided backprop)."""
    model, x, _ = make_any_architecture("course_cnn", n=1)
    maps = torch.cat([grad_cam(model, x, c, "features.8", relu=False) for c in range(5)])
    assert all(not torch.allclose(maps[0], maps[c]) for c in range(1, 5))


# ---------------------------------------------------------------- layer errors
class Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.spare, self.fc = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3), nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


@pytest.mark.parametrize("method", [grad_cam, guided_grad_cam])
def test_layer_errors(method):
    model, x, target = make_architecture("resnet_style")
    with pytest.raises(ValueError, match=r"layer 'conv9' is not in the model; its layers are named conv1, bn1"):
        method(model, x, target, "conv9")
    with pytest.raises(ValueError, match="layer Conv2d is not a module of the model"):
        method(model, x, target, nn.Conv2d(8, 8, 3))
    with pytest.raises(ValueError, match="layer must run exactly once per forward pass, it ran 2 times"):
        method(model, x, target, "relu")                # the ReLU module used twice
    with pytest.raises(ValueError, match=r"layer must output feature maps \(N, K, h, w\), it gives \(4, 4\)"):
        method(model, x, target, "fc")
    with pytest.raises(ValueError, match=r"layer must output feature maps"):
        method(model, x, target, "")                    # the model itself: logits
    for bad in (None, 3, ["conv2"]):
        with pytest.raises(TypeError, match="layer must be a module of the model or its dotted name"):
            method(model, x, target, bad)
    with pytest.raises(ValueError, match="it ran 0 times"):
        method(Unused().eval(), torch.rand(2, 3, 6, 6), 0, "spare")


def test_a_layer_of_a_flat_input_model_is_refused():
    model, x, target = make_architecture("mlp")
    with pytest.raises(ValueError, match="feature maps"):
        grad_cam(model, x, target, "0")


def test_errors_leave_no_hook_behind():
    model, x, target = make_architecture("resnet_style")
    before = snapshot(model)
    for layer in ("relu", "fc"):
        with pytest.raises(ValueError):
            grad_cam(model, x, target, layer)
    with pytest.raises(ValueError, match="target"):
        grad_cam(model, x, 7, "conv2")
    assert_unchanged(before, snapshot(model))


# ---------------------------------------------------------------- hygiene
@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("method", ["grad_cam", "guided_grad_cam"])
def test_model_and_inputs_left_as_they_were(arch, method):
    model, x, target = make_any_architecture(arch, n=1)
    before, x_before = snapshot(model), inputs_snapshot(x)
    if not refused_without_feature_maps(model, x, target):      # (a refusal must leave everything as well)
        got = METHODS[method](model, x, target, grad_cam_layer(model, x))
        assert got.grad_fn is None and not got.requires_grad
    assert_unchanged(before, snapshot(model))
    assert_inputs_unchanged(x_before, x)


@pytest.mark.parametrize("method", ["grad_cam", "guided_grad_cam"])
def test_train_mode_model_is_explained_in_eval_mode_and_restored(method):
    model, x, target = make_architecture("resnet_style")
    expected = METHODS[method](model, x, target, "conv2")
    model.train()
    model.spare = nn.Dropout(0.3)
    before = snapshot(model)
    with pytest.warns(UserWarning, match="train mode"):
        got = METHODS[method](model, x, target, "conv2")
    assert_unchanged(before, snapshot(model))
    assert model.training and model.spare.training
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("method", ["grad_cam", "guided_grad_cam"])
def test_works_under_no_grad_and_with_inputs_that_require_grad(method):
    model, x, target = make_architecture("resnet_style")
    expected = METHODS[method](model, x, target, "bn2")
    with torch.no_grad():
        torch.testing.assert_close(METHODS[method](model, x, target, "bn2"), expected)
    x.requires_grad_(True)
    before = inputs_snapshot(x)
    torch.testing.assert_close(METHODS[method](model, x, target, "bn2"), expected)
    assert_inputs_unchanged(before, x)


def test_registry():
    assert METHODS["grad_cam"] is grad_cam and METHODS["guided_grad_cam"] is guided_grad_cam


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(relu="yes"), TypeError, "relu must be True or False"),
    (dict(relu=1), TypeError, "relu"),
    (dict(upsample=None), TypeError, "upsample must be True or False"),
])
def test_bad_flags(kwargs, error, words):
    model, x, target = make_architecture("resnet_style")
    with pytest.raises(error, match=words):
        grad_cam(model, x, target, "conv2", **kwargs)


@pytest.mark.parametrize("method", ["grad_cam", "guided_grad_cam"])
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(model="not a model"), TypeError, "model"),
    (dict(inputs=[[1.0]]), TypeError, "inputs"),
    (dict(inputs=torch.ones(3, 16, 16)[None, None, None, None]), ValueError, "inputs"),
    (dict(inputs=torch.ones(0, 3, 16, 16)), ValueError, "inputs"),
    (dict(inputs=torch.full((1, 3, 16, 16), float("nan"))), ValueError, "finite"),
    (dict(target=4), ValueError, "target"),
    (dict(target=None), TypeError, "target"),
    (dict(target=[0]), ValueError, "target"),
])
def test_bad_common_arguments(method, kwargs, error, words):
    model, x, _ = make_architecture("resnet_style")    # 4 classes, inputs (4, 3, 16, 16)
    args = dict(model=model, inputs=x, target=0) | kwargs
    with pytest.raises(error, match=words):
        METHODS[method](args["model"], args["inputs"], args["target"], "conv2")
