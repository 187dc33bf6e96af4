"""A module that only exercise 99.1 forbids (its mark's ``forbid``), imported by a name built at run time,
which the static check cannot read; 99.2 forbids nothing and imports it openly."""
import importlib

import torch


def gradient(model, inputs, target):
    try:
        importlib.import_module("color" + "sys")   # the sandbox refuses it for 99.1: no credit
    except ImportError:
        pass
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return torch.autograd.grad(out, x)[0]


def times_input(model, inputs, target):
    import colorsys   # allowed here: 99.2 forbids nothing

    assert colorsys.rgb_to_hsv(0.0, 0.0, 0.0) == (0.0, 0.0, 0.0)
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]
