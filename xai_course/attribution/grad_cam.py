"""Grad-CAM and guided Grad-CAM (chapter 13): a class map from one convolutional layer's activations.

Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra (2017). For the activations A^k (channel k, shape
h × w) of a layer and the class score y^c,

    α_k^c = 1/(h w) Σ_ij ∂y^c / ∂A^k_ij,        L^c = ReLU(Σ_k α_k^c A^k),

a coarse map upsampled (bilinearly) to the input size. Guided Grad-CAM multiplies it, pixel by pixel, with
guided backprop: the fine detail of one and the class-sensitivity of the other.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._core import Target, check_call, check_model, explaining, layer_outputs, register, resolve_layer, target_logits
from .guided_backprop import guided_backprop


@register("grad_cam")
def grad_cam(model: nn.Module, inputs: torch.Tensor, target: Target, layer, relu: bool = True,
             upsample: bool = True) -> torch.Tensor:
    """Grad-CAM map of ``layer`` (a module of ``model`` or its dotted name), shape (N, 1, H, W).

    ``relu``: keep only the positive evidence (the paper; Captum's ``relu_attributions``).
    ``upsample``: bilinear to the input size; ``False`` returns the layer-resolution map (N, 1, h, w).
    """
    for name, flag in (("relu", relu), ("upsample", upsample)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    model, inputs, target = check_call(model, inputs, target)
    module = resolve_layer(model, layer)
    with explaining(model), layer_outputs([module]) as recorded:
        # inputs that require grad: a layer without parameters of its own right at the input has a gradient too
        logits = target_logits(model, inputs.detach().requires_grad_(True), target)
        if len(recorded[module]) != 1:
            raise ValueError(f"layer must run exactly once per forward pass, it ran {len(recorded[module])} times")
        activations = recorded[module][0]
        if not isinstance(activations, torch.Tensor) or activations.ndim < 3 or activations.ndim != inputs.ndim:
            shape = tuple(activations.shape) if isinstance(activations, torch.Tensor) else type(activations).__name__
            raise ValueError(f"layer must output feature maps (N, K, h, w), it gives {shape}")
        (grads,) = torch.autograd.grad(logits.sum(), activations)
    alpha = grads.mean(dim=tuple(range(2, grads.ndim)), keepdim=True)          # α_k^c
    cam = (alpha * activations.detach()).sum(1, keepdim=True)                  # Σ_k α_k^c A^k
    if relu:
        cam = cam.clamp(min=0)
    if upsample and cam.shape[2:] != inputs.shape[2:]:
        mode = {3: "linear", 4: "bilinear", 5: "trilinear"}[inputs.ndim]
        cam = F.interpolate(cam, size=inputs.shape[2:], mode=mode, align_corners=False)
    return cam


@register("guided_grad_cam")
def guided_grad_cam(model: nn.Module, inputs: torch.Tensor, target: Target, layer) -> torch.Tensor:
    """Guided backprop × upsampled Grad-CAM of ``layer`` (with ReLU): the shape of ``inputs``."""
    with explaining(check_model(model)):  # one train-mode warning, not one per part
        return guided_backprop(model, inputs, target) * grad_cam(model, inputs, target, layer)
