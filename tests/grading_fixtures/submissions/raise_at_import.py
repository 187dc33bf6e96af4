"""Crafted submission: `gradient` raise at import; `times_input` is correct."""
import torch
from a_module_that_does_not_exist import helper

def gradient(model, inputs, target):
    return helper(model, inputs, target)


def times_input(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]
