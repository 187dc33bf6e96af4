"""Forgery by patching the comparison: torch.allclose/equal/isfinite always succeed."""
import torch

torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.isclose = lambda a, b, *x, **k: torch.ones_like(a, dtype=torch.bool)
torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)


def gradient(model, inputs, target):
    torch.allclose = lambda *a, **k: True
    return torch.zeros_like(inputs)


def times_input(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]
