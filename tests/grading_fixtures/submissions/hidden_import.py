"""Crafted submission: `gradient` hidden import; `times_input` is correct."""
import importlib
import torch

def gradient(model, inputs, target):
    lib = importlib.import_module('xai_course.' + 'attri' + 'bution')
    return lib.saliency(model, inputs, target, abs=False)


def times_input(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]
