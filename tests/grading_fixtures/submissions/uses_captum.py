"""Crafted submission: `gradient` uses captum; `times_input` is correct."""
import torch
from captum.attr import Saliency

def gradient(model, inputs, target):
    return Saliency(model).attribute(inputs, target=target, abs=False)


def times_input(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]
