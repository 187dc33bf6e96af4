"""Full-gradients and FullGrad (chapter 13): the gradient with respect to the input *and* to every bias.

Srinivas & Fleuret (2019), "Full-Gradient Representation for Neural Network Visualization". For a ReLU
network (linear layers, BatchNorm in eval mode, ReLU, max/average pooling) with biases b the output is
exactly

    f(x) = ∇ₓf(x)ᵀ x + Σ_l Σ_(neurons of l) (∇_b f ⊙ b)        (completeness),

where the bias of a neuron is its layer's bias at that position, and a BatchNorm's bias is its effective
bias β - γ μ / √(σ² + ε). :func:`full_gradients` returns both parts. FullGrad reduces them to one map,

    S(x) = ψ(∇ₓf ⊙ x) + Σ_l Σ_c ψ((∇_b f ⊙ b)_c),

over the convolutional and BatchNorm layers (whose bias-gradients are spatial maps), with ψ as in
pytorch-grad-cam's FullGrad: per map (each channel c) the absolute value, rescaled to [0, 1]
((m - min) / (max - min + 1e-7)) and bilinearly resized to the input size; the sum is rescaled likewise.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ._core import Target, check_call, explaining, fast_layout, layer_outputs, register, target_logits

_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_SPATIAL = (nn.Conv2d, nn.BatchNorm2d)


def effective_bias(layer: nn.Module) -> torch.Tensor:
    """The bias of a layer's affine map: ``layer.bias``, or β - γ μ / √(σ² + ε) for BatchNorm in eval mode."""
    if isinstance(layer, _BATCHNORM):
        scale = torch.rsqrt(layer.running_var + layer.eps)
        gamma = layer.weight if layer.weight is not None else torch.ones_like(scale)
        beta = layer.bias if layer.bias is not None else torch.zeros_like(scale)
        return (beta - gamma * layer.running_mean * scale).detach()
    return layer.bias.detach()


def bias_layers(model: nn.Module) -> Dict[str, nn.Module]:
    """Named layers with a bias: Linear/Conv with ``bias``, and BatchNorm with running statistics."""
    found = {}
    for name, m in model.named_modules():
        if isinstance(m, _BATCHNORM) and m.running_mean is not None:
            found[name] = m
        elif isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) and m.bias is not None:
            found[name] = m
    return found


def full_gradients(model: nn.Module, inputs: torch.Tensor, target: Target
                   ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """``(input_term, bias_terms)``: ∇ₓf ⊙ x, and {layer name: ∇_b f ⊙ b shaped like the layer's output}.

    For ReLU networks ``input_term.sum() + Σ bias_terms.sum()`` equals the target logit (per example).
    A layer used several times in a forward pass contributes the sum of its calls. (Not in METHODS: it
    returns the decomposition, not one map; :func:`fullgrad` is its saliency map.)
    """
    model, inputs, target = check_call(model, inputs, target)
    layers = bias_layers(model)
    with explaining(model):
        layout = fast_layout(inputs, model)     # before the hooks: its trial run is not recorded
    with explaining(model), layer_outputs(layers.values()) as recorded:
        x = inputs.detach().requires_grad_(True)
        logits = target_logits(model, x.clone(memory_format=layout), target)
        outputs = [out for layer in layers.values() for out in recorded[layer]]
        grads = torch.autograd.grad(logits.sum(), [x, *outputs], allow_unused=True)
    input_term, grads = inputs.detach() * grads[0], iter(grads[1:])
    bias_terms = {}
    for name, layer in layers.items():
        b = effective_bias(layer)
        terms = [(torch.zeros_like(out) if g is None else g) * b.view(1, -1, *[1] * (out.ndim - 2))
                 for out, g in zip(recorded[layer], grads)]
        if terms:
            bias_terms[name] = sum(terms[1:], terms[0]).detach()
    return input_term, bias_terms


def _rescale(maps: torch.Tensor) -> torch.Tensor:
    """|.| of each map (M, ...) rescaled to [0, 1]: (m - min) / (max - min + 1e-7)."""
    m = maps.abs().flatten(1)
    m = m - m.min(1, keepdim=True).values
    return (m / (m.max(1, keepdim=True).values + 1e-7)).view(maps.shape)


def _psi_channels(term: torch.Tensor, size) -> torch.Tensor:
    """Σ_c ψ(term_c) for a term (N, C, h, w): (N, H, W).

    Bilinear resizing is linear, so summing the rescaled channels first and resizing once gives the same
    map as resizing every channel, at a fraction of the cost.
    """
    total = _rescale(term.flatten(0, 1)).view(term.shape).sum(1, keepdim=True)
    if total.shape[-2:] != tuple(size):
        total = F.interpolate(total, size=size, mode="bilinear", align_corners=False)
    return total[:, 0]


@register("fullgrad")
def fullgrad(model: nn.Module, inputs: torch.Tensor, target: Target) -> torch.Tensor:
    """The FullGrad saliency map (N, 1, H, W) in [0, 1] (see the module doc for ψ)."""
    if isinstance(inputs, torch.Tensor) and inputs.ndim != 4:  # other types: full_gradients' TypeError
        raise ValueError(f"inputs must be images (N, C, H, W) for fullgrad, got shape {tuple(inputs.shape)}")
    input_term, bias_terms = full_gradients(model, inputs, target)
    layers = dict(model.named_modules())
    size = inputs.shape[-2:]
    total = _psi_channels(input_term, size)
    for name, term in bias_terms.items():
        if isinstance(layers[name], _SPATIAL):
            total = total + _psi_channels(term, size)
    return _rescale(total)[:, None]
