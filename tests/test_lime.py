"""LIME (chapter 7): parity with Captum's Lime on the same coalitions, the lime library statistically,
known answers on a model additive in the segments, determinism, hygiene, bad input."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make
from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from xai_course.attribution import METHODS, lime
from xai_course.attribution.lime import kernel_weights
from xai_course.attribution.masking import check_segments, make_fill, superpixels


def our_coalitions(seed, n, samples, counts):
    """The coalitions lime() draws from ``seed`` (its documented recipe), for feeding Captum."""
    m = int(counts.max())
    z = torch.rand((n, samples, m), generator=torch.Generator().manual_seed(seed)) < 0.5
    z[:, 0] = True
    return z & (torch.arange(m) < counts[:, None, None])


def captum_lime(model, x, target, segments, baseline, z, alpha, kernel_width=0.25):
    """Captum's Lime with our coalitions (perturb_func), kernel on the binary vector, Ridge(alpha)."""
    from captum._utils.models.linear_model import SkLearnLinearRegression, SkLearnRidge
    from captum.attr import Lime

    rows = iter(z.float())

    def perturb(original, **kwargs):
        return next(rows)[None]

    def similarity(original, perturbed, interpretable, **kwargs):
        return kernel_weights(interpretable.reshape(1, -1), kernel_width).item()

    surrogate = SkLearnRidge(alpha=alpha) if alpha > 0 else SkLearnLinearRegression()
    explainer = Lime(model, interpretable_model=surrogate, similarity_func=similarity, perturb_func=perturb)
    mask = segments[None] if x.ndim == 1 else segments[None, None].expand(1, *x.shape)   # x: one example
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return explainer.attribute(x[None], target=target, baselines=baseline[None], feature_mask=mask,
                                   n_samples=len(z), perturbations_per_eval=64, return_input_shape=False)[0]


@pytest.mark.parametrize("name", ["mlp", "course_cnn", "resnet_style", "functional_cnn"])
def test_parity_with_captum_on_the_same_coalitions(name):
    model, x, target = make(name, n=2)
    segments = superpixels(x, "grid", cells=3) if x.ndim == 4 else torch.arange(x.shape[1]) % 4
    seg, counts = check_segments(segments, x)
    samples = 80
    _, surrogate = lime(model, x, target, segments=segments, samples=samples, seed=5, return_surrogate=True,
                        baseline="mean" if x.ndim == 4 else 0.0)
    fill = make_fill(x, "mean" if x.ndim == 4 else 0.0, seg)
    z = our_coalitions(5, len(x), samples, counts)
    for i in range(len(x)):
        k = int(counts[i])
        theirs = captum_lime(model, x[i], int(target[i]), seg[i], fill[i], z[i, :, :k], alpha=1.0)
        ours = surrogate.coefficients[i, :k]
        # sklearn fits in float32 from Captum's float32 data: agreement to float32 rounding of the fit
        tol = 1e-4 * max(1.0, ours.abs().max().item())
        assert (theirs[:k] - ours).abs().max().item() < tol


def additive_model(weights, classes=3):
    """A linear model f_c(x) = <weights_c, x>: additive in any segmentation, with baseline 0."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(weights[0].numel(), classes, bias=True))
    with torch.no_grad():
        model[1].weight.copy_(weights.flatten(1))
        model[1].bias.fill_(0.3)
    return model.eval()


def test_known_answer_additive_model_alpha_zero():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 12, 12, generator=gen)
    weights = torch.randn(3, 3, 12, 12, generator=gen)
    model = additive_model(weights)
    segments = superpixels(x, "grid", cells=(2, 3))
    target = torch.tensor([1, 2])
    got, surrogate = lime(model, x, target, segments=segments, samples=200, alpha=0.0, baseline=0.0, seed=1,
                          return_surrogate=True)
    for i in range(2):
        contribution = (weights[target[i]] * x[i]).sum(0)                        # (H, W), per pixel
        expected = torch.stack([contribution[segments[i] == m].sum() for m in range(6)])
        torch.testing.assert_close(surrogate.coefficients[i], expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got[i, 0], expected[segments[i]], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(surrogate.intercept, torch.full((2,), 0.3), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(surrogate.score, torch.ones(2), rtol=1e-5, atol=1e-5)   # a perfect fit
    assert got.shape == x.shape and torch.equal(got[:, 0], got[:, 2])                  # all channels alike


def test_ridge_shrinks_and_matches_sklearn():
    from sklearn.linear_model import Ridge

    model, x, target = make("mlp", n=1)
    segments = torch.arange(10) % 5
    _, s = lime(model, x, target, segments=segments, samples=60, alpha=3.0, baseline=0.0, seed=2,
                return_surrogate=True)
    z = our_coalitions(2, 1, 60, torch.tensor([5]))[0].float()
    with torch.no_grad():
        filled = torch.where(z[:, segments].bool(), x, torch.zeros_like(x))
        y = model(filled)[:, int(target)].double().numpy()
    w = kernel_weights(z, 0.25).numpy()
    reference = Ridge(alpha=3.0).fit(z.numpy(), y, sample_weight=w)
    np.testing.assert_allclose(s.coefficients[0].numpy(), reference.coef_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s.intercept[0].item(), reference.intercept_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s.score[0].item(), reference.score(z.numpy(), y, sample_weight=w), rtol=1e-4)


def test_kernel_is_the_lime_librarys():
    z = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]])
    d = np.array([0.0, 0.5, 1.0, 1 - np.sqrt(0.5)])
    expected = np.sqrt(np.exp(-d ** 2 / 0.25 ** 2))                         # lime_image's kernel
    np.testing.assert_allclose(kernel_weights(z, 0.25).numpy(), expected, rtol=1e-12)


def test_statistically_like_the_lime_library():
    """The lime library's LimeImageExplainer on the same segments, fill and output: its coefficients
    are within the sampling spread of ours (different random coalitions; 1000 samples each)."""
    lime_image = pytest.importorskip("lime.lime_image")
    model, x, target = make("resnet_style", n=1)          # 16 x 16 images: fast
    segments = superpixels(x, "grid", cells=3)
    ours = [lime(model, x, target, segments=segments, samples=1000, seed=s, return_surrogate=True)[1]
            .coefficients[0] for s in range(3)]
    spread = torch.stack(ours).std(0).max().item()

    def classifier(images):
        batch = torch.from_numpy(images).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            return model(batch).double().numpy()

    explainer = lime_image.LimeImageExplainer(random_state=0)
    explanation = explainer.explain_instance(
        x[0].permute(1, 2, 0).double().numpy(), classifier, labels=(int(target[0]),), top_labels=None,
        hide_color=None, num_samples=1000, segmentation_fn=lambda image: segments[0].numpy(),
        )
    theirs = torch.zeros(9, dtype=torch.float64)
    for m, value in explanation.local_exp[int(target[0])]:
        theirs[m] = value
    mean = torch.stack(ours).mean(0).double()
    scale = mean.abs().max().item()
    # 5 sampling standard deviations (or 2 % of the largest coefficient) per segment
    assert (theirs - mean).abs().max().item() < max(5 * spread, 0.02 * scale)


def test_determinism_under_a_seed_and_batch_size():
    model, x, target = make("resnet_style", n=2)
    a = lime(model, x, target, samples=50, seed=3)
    b = lime(model, x, target, samples=50, seed=3, batch_size=7)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    c = lime(model, x, target, samples=50, seed=4)
    assert not torch.equal(a, c)
    assert METHODS["lime"] is lime


def test_unused_segments_get_zero():
    model, x, target = make("course_cnn", n=2)
    seg = superpixels(x, "grid", cells=2)
    seg[1] = seg[1].clamp(max=1)                    # image 1 has only segments 0 and 1 of 0..3
    _, s = lime(model, x, target, segments=seg, samples=40, seed=0, return_surrogate=True)
    assert s.coefficients.shape == (2, 4) and torch.all(s.coefficients[1, 2:] == 0)


def test_hygiene_and_no_grad():
    for name in ("course_resnet", "resnet_style", "mlp"):
        model, x, target = make(name, n=2)
        before, x_before = snapshot(model), inputs_snapshot(x)
        with torch.no_grad():
            got = lime(model, x, target, samples=20, seed=0, baseline=0.0)
        assert got.shape == x.shape and torch.isfinite(got).all()
        assert_unchanged(before, snapshot(model))
        assert_inputs_unchanged(x_before, x)


def test_train_mode_warns_and_is_restored():
    model, x, target = make("course_resnet", n=1)
    model.train()
    with pytest.warns(UserWarning, match="train mode"):
        lime(model, x, target, samples=10, seed=0)
    assert model.training


@pytest.mark.parametrize("kwargs, match", [
    (dict(samples=1), "samples"), (dict(samples=10.0), "samples"),
    (dict(kernel_width=0), "kernel_width"), (dict(alpha=-1), "alpha"),
    (dict(batch_size=0), "batch_size"), (dict(seed="a"), "seed"),
    (dict(segments=torch.zeros(5, 5, dtype=torch.long)), "segments"),
    (dict(segments=torch.zeros(64, 64)), "segments"),
    (dict(baseline="purple"), "baseline"), (dict(baseline=torch.zeros(2, 2)), "baseline"),
])
def test_bad_input(kwargs, match):
    model, x, target = make("course_cnn", n=1)
    with pytest.raises((ValueError, TypeError), match=match):
        lime(model, x, target, **{"samples": 10, **kwargs})


def test_bad_target():
    model, x, _ = make("course_cnn", n=1)
    with pytest.raises(ValueError, match="target"):
        lime(model, x, 99, samples=10)
