"""DeConvNet (chapter 11): the signal sent back through "deconvolution" ReLUs, from a class or a feature map.

Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks". The DeConvNet reuses the
network's own filters, transposed, and max-pooling's switches; at every ReLU the signal R passed back is

    R_in = max(0, R_out)

whatever the ReLU's input was (the gradient passes [x > 0] · R_out, guided backprop [x > 0] · max(0, R_out)).
One rule on the engine of :mod:`rules`, like guided backprop. Two ways to start the signal:

- ``target``: at the class logits, one-hot on the target class (all filters of every layer take part);
- ``layer`` and ``channel``: at the output A of one layer, zero except channel ``channel``, which holds
  A itself (the slides' "DeConvNet with a single filter in a given layer"). For a first-layer convolution
  this is ``conv_transpose2d`` of that channel's map with its filter.
"""
from __future__ import annotations

from numbers import Integral

import torch
from torch import nn

from ._core import (Target, check_call, check_inputs, check_model, explaining, gradient_of_target, register,
                    resolve_layer)
from .rules import DeconvReLU, backward_rules

RULES = {"relu": DeconvReLU()}


class _Stop(Exception):
    """Raised by the hook on ``layer`` once it has run: the layers above it are not needed."""


@register("deconvnet")
def deconvnet(model: nn.Module, inputs: torch.Tensor, target: Target = None, layer=None,
              channel: int | None = None) -> torch.Tensor:
    """DeConvNet projection to ``inputs``' space, the shape of ``inputs``.

    Give ``target`` (the class logit is sent back) or ``layer`` (a module of ``model`` or its dotted
    name) and ``channel`` (the feature map of that layer that is sent back), not both.
    """
    if layer is None and channel is None:
        model, inputs, target = check_call(model, inputs, target)
        with explaining(model), backward_rules(RULES):
            return gradient_of_target(model, inputs, target)
    if target is not None:
        raise ValueError("give either target (a class) or layer and channel (a feature map), not both")
    if layer is None or channel is None:
        raise ValueError("layer and channel go together: give both to project one feature map")
    if isinstance(channel, bool) or not isinstance(channel, Integral):
        raise TypeError(f"channel must be an int, got {type(channel).__name__}")
    check_model(model)
    check_inputs(inputs)
    module = resolve_layer(model, layer)
    recorded = []

    def stop(module, args, output):
        recorded.append(output)
        raise _Stop

    with explaining(model), backward_rules(RULES):
        x = inputs.detach().requires_grad_(True)
        handle = module.register_forward_hook(stop)
        try:
            model(x.clone())
        except _Stop:
            pass
        finally:
            handle.remove()
        if not recorded:
            raise ValueError("layer did not run in the model's forward pass")
        out = recorded[0]
        if not isinstance(out, torch.Tensor) or out.ndim < 2:
            raise ValueError("layer must output a tensor (N, channels, ...)")
        if not 0 <= channel < out.shape[1]:
            raise ValueError(f"channel must be in [0, {out.shape[1] - 1}] (the layer has {out.shape[1]} "
                             f"channels), got {channel}")
        signal = torch.zeros_like(out)
        signal[:, channel] = out[:, channel].detach()          # the feature map itself, every other one 0
        (grad,) = torch.autograd.grad(out, x, signal)
    return grad
