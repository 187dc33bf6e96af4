"""Guided backpropagation (chapter 13, with DeConvNet in chapter 11): the gradient through "guided" ReLUs.

Springenberg, Dosovitskiy, Brox & Riedmiller (2015), "Striving for Simplicity: The All Convolutional
Net". At every ReLU y = max(0, x) the signal R passed back is

    R_in = [x > 0] · max(0, R_out)

where the gradient would pass [x > 0] · R_out: only positive signal, only where the unit was active.
One rule on the engine of :mod:`rules`; every other operation keeps its gradient.
"""
from __future__ import annotations

import torch
from torch import nn

from ._core import Target, check_call, explaining, gradient_of_target, register
from .rules import GuidedReLU, backward_rules

RULES = {"relu": GuidedReLU()}


@register("guided_backprop")
def guided_backprop(model: nn.Module, inputs: torch.Tensor, target: Target) -> torch.Tensor:
    """Guided backprop of the target logit to ``inputs``: the gradient with the GuidedReLU rule."""
    model, inputs, target = check_call(model, inputs, target)
    with explaining(model), backward_rules(RULES):
        return gradient_of_target(model, inputs, target)
