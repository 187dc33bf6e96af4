"""Crafted submission: `gradient` prints megabytes; `times_input` is correct."""
import torch

def gradient(model, inputs, target):
    print('spam ' * 1_000_000)
    x = inputs.detach().clone().requires_grad_(True)
    g = torch.autograd.grad(model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum(), x)[0]
    return g


def times_input(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]
