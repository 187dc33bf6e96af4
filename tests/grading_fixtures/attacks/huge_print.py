"""Prints far too much: the worker is stopped, the report stays small."""
import sys
import torch


def gradient(model, inputs, target):
    line = "spam " * 2000 + "\n"
    while True:
        sys.stdout.write(line)


def times_input(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]
