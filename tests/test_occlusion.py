"""Chapter 12: occlusion. Captum parity on every test architecture (windows cut at the edge, strides,
channel windows, baselines), known answers on a linear model, the cost in model calls, batch_size,
hygiene and bad input."""
from __future__ import annotations

import math

import pytest
import torch
from captum.attr import Occlusion
from torch import nn

from conftest import ALL_ARCHITECTURES as ALL, make
from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from xai_course.attribution import METHODS, count_passes
from xai_course.attribution.occlusion import occlusion


def captum_shapes(x, window, stride):
    if x.ndim == 2:
        return (window,) if isinstance(window, int) else window, (stride,) if isinstance(stride, int) else stride
    w = (x.shape[1], window, window) if isinstance(window, int) else window
    s = (1, stride, stride) if isinstance(stride, int) else stride
    return w, s


def cases(x):
    if x.ndim == 2:
        return [(3, 1, 0.0), (4, 3, 0.5), ((2,), (2,), -0.2)]
    h = x.shape[-1]
    big = [(h // 2 + 1, h // 4, 0.0)]  # two windows a side, the last cut at the edge
    small = [(3, 2, 0.3), ((1, 3, 2), (1, 2, 1), "black"), (5, 4, 0.0)]
    return big + (small if h <= 16 else small[:1])


@pytest.mark.parametrize("arch", ALL)
def test_equals_captum(arch):
    model, x, target = make(arch, n=2 if arch != "torchvision_resnet18" else 1)
    for window, stride, baseline in cases(x):
        ours = occlusion(model, x, target, window, stride, baseline=baseline)
        ref = 0.0 if baseline == "black" else baseline      # "black" is 0.0 in the whole course
        w, s = captum_shapes(x, window, stride)
        theirs = Occlusion(model).attribute(x, sliding_window_shapes=w, strides=s, baselines=ref, target=target,
                                            perturbations_per_eval=16)
        # each value is a difference of two outputs: float32 error is relative to the outputs
        # themselves (ours run on channels-last images, another convolution kernel), not to the
        # (much smaller) difference
        with torch.no_grad():
            scale = max(theirs.abs().max().item(), model(x).abs().max().item())
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * scale)


def test_linear_model_known_answer():
    """f(x) = w·x: covering window W_k drops f by Σ_{j ∈ W_k} w_j (x_j - b); window 1 gives w_i (x_i - b)."""
    model = nn.Linear(6, 2, bias=True).eval()
    x = torch.randn(3, 6)
    w = model.weight[1].detach()
    torch.testing.assert_close(occlusion(model, x, 1, window=1, baseline=0.5), w * (x - 0.5), rtol=1e-5, atol=1e-6)
    contributions = (w * x).double()
    drops = torch.stack([contributions[:, k:k + 2].sum(1) for k in (0, 2, 4)], 1)
    expected = drops.repeat_interleave(2, 1).float()   # window 2, stride 2: each element in one window
    torch.testing.assert_close(occlusion(model, x, 1, window=2, stride=2), expected, rtol=1e-5, atol=1e-6)
    # window 2, stride 1: element 0 in one window, the others in two (the last window is cut at the edge)
    drops = torch.stack([contributions[:, k:k + 2].sum(1) for k in range(5)], 1)
    inner = (drops[:, :-1] + drops[:, 1:]) / 2
    expected = torch.cat([drops[:, :1], inner, drops[:, -1:]], 1).float()
    torch.testing.assert_close(occlusion(model, x, 1, window=2, stride=1), expected, rtol=1e-5, atol=1e-6)


def test_cost_in_model_calls_and_batch_size():
    model, x, target = make("resnet_style", n=3)
    expected = occlusion(model, x, target, 4, 3)
    positions = (math.ceil((16 - 4) / 3) + 1) ** 2
    for batch_size in (1, 7, 1000):
        with count_passes(model) as counter:
            got = occlusion(model, x, target, 4, 3, batch_size=batch_size)
        assert max(counter) <= batch_size and sum(counter) == 3 * (1 + positions)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_unchanged_input_region_gives_zero():
    """Covering a region with what is there already changes nothing: occlusion is exactly zero."""
    model, x, target = make("course_cnn", n=2)
    assert torch.equal(occlusion(model, x, target, 16, 16, baseline=x), torch.zeros_like(x))


@pytest.mark.parametrize("arch", ["mlp", "course_resnet", "functional_cnn"])
def test_hygiene(arch):
    model, x, target = make(arch)
    window, stride = (4, 2) if x.ndim == 2 else (x.shape[-1] // 2, x.shape[-1] // 4)
    expected = occlusion(model, x, target, window=window, stride=stride)
    model.train()
    x.requires_grad_(True)
    before, x_before = snapshot(model), inputs_snapshot(x)
    with pytest.warns(UserWarning, match="train mode"), torch.no_grad():
        got = occlusion(model, x, target, window=window, stride=stride, batch_size=3)
    assert_unchanged(before, snapshot(model))
    assert_inputs_unchanged(x_before, x)
    assert not got.requires_grad
    torch.testing.assert_close(got, expected)


def test_registry():
    assert METHODS["occlusion"] is occlusion


class Summed(nn.Module):
    def forward(self, x):
        return x.sum(1)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(model=Summed().eval()), ValueError, "logits"),
    (dict(inputs=torch.ones(10)), ValueError, "inputs"),
    (dict(target=5), ValueError, "target"),
    (dict(window=0), ValueError, "window"),
    (dict(window=11), ValueError, "window"),
    (dict(window=(2, 2)), ValueError, "window"),
    (dict(window=2.0), ValueError, "window"),
    (dict(stride=0), ValueError, "stride"),
    (dict(stride=3, window=2), ValueError, "stride"),
    (dict(stride=(1, 1)), ValueError, "stride"),
    (dict(baseline=torch.zeros(3)), ValueError, "baseline"),
    (dict(baseline="gray"), ValueError, "baseline"),
    (dict(batch_size=0), ValueError, "batch_size"),
])
def test_bad_input(kwargs, error, words):
    model, x, _ = make("mlp", n=5)
    args = dict(model=model, inputs=x, target=0, window=2) | kwargs
    with pytest.raises(error, match=words):
        occlusion(args.pop("model"), args.pop("inputs"), args.pop("target"), **args)


def test_bad_window_for_images():
    model, x, target = make("resnet_style")
    with pytest.raises(ValueError, match="window"):
        occlusion(model, x, target, window=(3, 4, 4, 1))
    with pytest.raises(ValueError, match="window"):
        occlusion(model, x, target, window=(4, 4, 4))  # 4 channels in a 3-channel input
