"""Forgery by tensor subclass: every comparison on the returned tensor succeeds."""
import torch


class Always(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("allclose", "equal"):
            return True
        if name in ("isfinite", "isclose", "eq", "__eq__"):
            return torch.ones(args[0].shape, dtype=torch.bool)
        return super().__torch_function__(func, types, args, kwargs or {})

    def __eq__(self, other):
        return True


def gradient(model, inputs, target):
    return torch.zeros_like(inputs).as_subclass(Always)


def times_input(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]
