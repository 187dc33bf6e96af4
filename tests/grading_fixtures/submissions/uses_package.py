"""Crafted submission: `gradient` uses package; `times_input` is correct."""
import torch
import xai_course.attribution as A

def gradient(model, inputs, target):
    return A.saliency(model, inputs, target, abs=False)


def times_input(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]
