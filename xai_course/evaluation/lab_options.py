"""The options every attribution method is called with in the labs on the course CNN (labs 14, 16, 17).

What the labs share is fixed here: Grad-CAM and Guided Grad-CAM at ``features.9``, the last ReLU of
``shapes_cnn`` and its siblings (16x16 maps, chapter 13), occlusion with an 8x8 window, one ``seed``
for every method that draws random numbers. What a lab chooses (how much it can afford per image, its
reference images) is a parameter of :func:`method_options`; each lab's own ``method_options`` says
why it chooses its values. An option left at ``None`` is not passed: the method runs with its default.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..attribution import METHODS, superpixels
from ..attribution.xrai import xrai_segments

GRAD_CAM_LAYER = "features.9"  # the last ReLU of shapes_cnn (16x16 maps, chapter 13)
OCCLUSION_WINDOW = 8


def _given(**options) -> dict:
    """The options that are not None (in the order given): the others keep the method's default."""
    return {name: value for name, value in options.items() if value is not None}


def method_options(*, seed: int = 0, steps: Optional[int] = None, samples: Optional[int] = None,
                   baseline_samples: Optional[int] = None, perturbation_samples: Optional[int] = None,
                   stride: Optional[int] = None, cells: Optional[int] = None,
                   background: Optional[torch.Tensor] = None, images: Optional[torch.Tensor] = None,
                   saliency_abs: Optional[bool] = None) -> dict:
    """``{method: options}`` for every method in ``METHODS`` (sorted by name), on the course CNN.

    - ``seed``: of the random map, SmoothGrad, GradientSHAP, LIME and Kernel SHAP;
    - ``steps``: of integrated gradients and XRAI (its integrated gradients);
    - ``samples``: SmoothGrad's noisy samples; ``baseline_samples``: GradientSHAP's samples;
    - ``perturbation_samples``: LIME's and Kernel SHAP's perturbed samples;
    - ``stride``: of the 8x8 occlusion window;
    - ``background``: the baselines of DeepSHAP and GradientSHAP;
    - ``images``: the images the options are for; when given, LIME's and Kernel SHAP's superpixels and
      XRAI's segments are computed from them here, once (they depend on the images only), and
      ``cells`` splits them into ``cells`` x ``cells`` squares, the players of exact Shapley values;
    - ``saliency_abs``: saliency's ``abs`` (``False``: the signed gradient).

    A method added to the course later and not named here runs with its defaults (``{}``).
    """
    if cells is not None and images is None:
        raise ValueError("cells needs the images (their side sets the grid of squares), got images=None")
    segments = xrai = grid = None
    if images is not None:
        segments, xrai = superpixels(images), xrai_segments(images)
        if cells is not None:
            side = images.shape[-1]
            cell = torch.arange(side) * cells // side
            grid = cell[:, None] * cells + cell[None, :]  # cells x cells squares: the players of Shapley
    options = {
        "saliency": _given(abs=saliency_abs),
        "random_attribution": {"seed": seed},
        "grad_cam": {"layer": GRAD_CAM_LAYER}, "guided_grad_cam": {"layer": GRAD_CAM_LAYER},
        "integrated_gradients": _given(steps=steps),
        "smoothgrad": _given(samples=samples, seed=seed),
        "deepshap": _given(baselines=background),
        "gradient_shap": _given(baselines=background, samples=baseline_samples, seed=seed),
        "occlusion": _given(window=OCCLUSION_WINDOW, stride=stride),
        "shapley_values": _given(segments=grid),
        "kernel_shap": _given(segments=segments, samples=perturbation_samples, seed=seed),
        "lime": _given(segments=segments, samples=perturbation_samples, seed=seed),
        "xrai": _given(steps=steps, segments=xrai),
    }
    return {name: options.get(name, {}) for name in sorted(METHODS)}
