"""The channels-last layout the methods give CPU convolutions (``_core.fast_layout``) is an optimisation
only: a model that cannot run on it (one that flattens with ``.view``) is run in the default layout, by
every method, with the same results."""
import pytest
import torch
from torch import nn

from xai_course import data, models
from xai_course.attribution import METHODS, activation_maximization, count_passes
from xai_course.attribution._core import fast_layout
from xai_course.evaluation import lab_options


class ViewFlatten(nn.Module):
    """shapes_cnn's own layers, flattened with ``.view`` (common in hand-written models)."""

    def __init__(self, model):
        super().__init__()
        self.features, self.classifier = model.features, model.classifier

    def forward(self, x):
        h = self.features(x)
        return self.classifier[1:](h.view(h.size(0), -1))


@pytest.fixture(scope="module")
def twins():
    model = models.load("shapes_cnn").eval()
    return model, ViewFlatten(model).eval(), data.shapes(2, seed=5).images


def test_fast_layout_keeps_the_default_for_a_model_that_views(twins):
    model, viewing, x = twins
    assert fast_layout(x, model) == torch.channels_last
    assert fast_layout(x, viewing) == torch.contiguous_format
    assert fast_layout(torch.rand(4, 2, 11, 1)) == torch.contiguous_format   # one pixel wide
    assert fast_layout(torch.rand(4, 8)) == torch.contiguous_format


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_runs_on_a_model_that_flattens_with_view(twins, name):
    model, viewing, x = twins
    options = lab_options.method_options(seed=0, steps=4, samples=4, baseline_samples=4,
                                         perturbation_samples=40, stride=8, images=x, cells=2,
                                         background=torch.zeros(2, *x.shape[1:]))[name]
    target = model(x).argmax(1)
    expected = METHODS[name](model, x, target, **options)
    got = METHODS[name](viewing, x, target, **options)
    # the same numbers in another memory layout: float32 rounding of the sums only
    assert torch.allclose(got, expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()) + 1e-12), name


def test_activation_maximization_on_a_model_that_views_and_on_float64(twins):
    model, viewing, _ = twins
    a = activation_maximization(model, 1, (3, 64, 64), steps=3, seed=0)
    b = activation_maximization(viewing, 1, (3, 64, 64), steps=3, seed=0)
    assert torch.allclose(a, b, atol=1e-5)
    tiny = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double().eval()
    for start in ("noise", "zeros", torch.zeros(3, 2, 2)):     # the start takes the model's dtype
        assert activation_maximization(tiny, 0, (3, 2, 2), steps=3, start=start, seed=0).dtype == torch.float64


def test_count_passes_leaves_out_the_layout_check_only():
    model = models.load("shapes_cnn").eval()           # a model the package has not met: it checks once
    x, target = data.shapes(3, seed=6).images, torch.tensor([0, 1, 2])
    seen = []
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    try:
        with count_passes(model) as sizes:
            METHODS["saliency"](model, x, target)
            METHODS["smoothgrad"](model, x, target, samples=4, seed=0)
    finally:
        handle.remove()
    assert seen == [1] + sizes                          # a plain hook sees the check, one example
    assert sizes == [3, 12]                             # saliency: one pass; SmoothGrad: 4 samples of 3
    with count_passes(model) as again:
        METHODS["saliency"](model, x, target)
    assert again == [3] and not model._forward_pre_hooks   # checked once per model; the hook is removed
