"""The Captum twins of xai_course.models.twins: same function, each hooked module used once, and the
reason they exist (Captum's DeepLift on shapes_cnn: broken on the original, exact on the twin)."""
import warnings

import pytest
import torch
from torch import nn

from conftest import TwiceReLUNet
from xai_course import models
from xai_course.models.twins import (HOOKED, Dispatcher, captum_input, captum_twin, module_calls,
                                     without_overlapping_pools)


def test_captum_input_is_a_detached_copy_requiring_grad():
    x = torch.rand(2, 3)
    y = captum_input(x)
    assert y.requires_grad and y.is_leaf and not x.requires_grad
    assert torch.equal(x, y.detach()) and y.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("no_op", [True, False])
def test_twin_splits_a_reused_relu_and_computes_the_same_function(no_op):
    torch.manual_seed(0)
    model = TwiceReLUNet().eval()
    x = torch.rand(3, 3, 8, 8)
    assert max(module_calls(model, x, HOOKED).values()) == 2
    twin = captum_twin(model, x, no_op=no_op)
    assert all(n == 1 for n in module_calls(twin, x, HOOKED).values())
    with torch.no_grad():
        assert torch.equal(twin(x), model(x)) and torch.equal(twin(x), model(x))  # dispatchers reset
    assert all(d.no_op is no_op for d in twin.modules() if isinstance(d, Dispatcher))
    assert model.relu.inplace, "the original model is left as it was"


def test_twin_layer_and_bad_input():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)).eval()
    x = torch.randn(2, 4)
    twin, layer = captum_twin(model, x, layer=model[1])
    assert isinstance(layer, Dispatcher) and any(m is layer for m in twin.modules())
    with pytest.raises(ValueError, match="layer"):
        captum_twin(model, x, layer=nn.ReLU())
    with pytest.raises(TypeError, match="model"):
        captum_twin(lambda t: t, x)
    with pytest.raises(TypeError, match="inputs"):
        captum_twin(model, [1.0, 2.0])


def test_without_overlapping_pools_keeps_the_output_shape():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(3, 2, 1), nn.Flatten()).eval()
    x = torch.rand(1, 3, 8, 8)
    twin = without_overlapping_pools(model, x)
    pool = twin[1]
    assert pool.kernel_size == pool.stride
    with torch.no_grad():
        assert twin(x).shape == model(x).shape


def test_captum_deeplift_needs_the_no_op_on_the_course_cnn():
    """Chapter 3's claim: the disagreement is the ReLU -> MaxPool hook interaction, fixed by a no-op."""
    captum = pytest.importorskip("captum.attr")
    model = models.load("shapes_cnn")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 1])

    def delta(net):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a, d = captum.DeepLift(net).attribute(captum_input(x), baselines=torch.zeros_like(x),
                                                  target=target, return_convergence_delta=True)
        with torch.no_grad():
            scale = (net(x) - net(torch.zeros_like(x))).abs().max()
        return float(d.abs().max() / scale)

    assert delta(captum_twin(model, x)) < 1e-4                  # float32 rounding of a sum
    assert delta(captum_twin(model, x, no_op=False)) > 1e-2     # without the no-op: broken
    assert delta(model) > 1e-2
