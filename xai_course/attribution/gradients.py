"""Vanilla gradients (chapter 1) and gradient x input.

Simonyan, Vedaldi & Zisserman (2014), "Deep Inside Convolutional Networks": the saliency of input x_0
for class c is the gradient of the class score S_c at x_0,

    E_grad(x_0) = dS_c / dx |_{x = x_0},

the weights of the first-order Taylor approximation S_c(x) ~ w^T x + b around x_0. Its absolute value
says how sensitive the score is to each input; its sign says in which direction.
Gradient x input (Shrikumar et al., 2016) multiplies it elementwise by the input: x_0 * E_grad(x_0).
"""
from __future__ import annotations

import torch
from torch import nn

from ._core import Target, check_call, explaining, gradient_of_target, register


@register("saliency")
def saliency(model: nn.Module, inputs: torch.Tensor, target: Target, abs: bool = True) -> torch.Tensor:
    """Vanilla gradient dS_c/dx at ``inputs`` (chapter 1); its absolute value when ``abs`` (default).

    ``abs=True`` matches Captum's ``Saliency`` default; ``abs=False`` keeps the sign.
    """
    if not isinstance(abs, bool):
        raise TypeError(f"abs must be True or False, got {abs!r}")
    model, inputs, target = check_call(model, inputs, target)
    with explaining(model):
        grad = gradient_of_target(model, inputs, target)
    return grad.abs() if abs else grad


@register("input_x_gradient")
def input_x_gradient(model: nn.Module, inputs: torch.Tensor, target: Target) -> torch.Tensor:
    """Gradient x input: x * dS_c/dx at ``inputs`` (chapters 1 and 2); signed."""
    model, inputs, target = check_call(model, inputs, target)
    with explaining(model):
        grad = gradient_of_target(model, inputs, target)
    return inputs.detach() * grad
