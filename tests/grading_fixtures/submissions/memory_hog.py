"""Crafted submission: `gradient` allocates 40 GB; `times_input` is correct."""
import torch


def gradient(model, inputs, target):
    return torch.zeros(10**10) [: inputs.numel()].reshape(inputs.shape)


def times_input(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]
