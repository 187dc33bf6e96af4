"""Helpers for grading tests: fresh random models and inputs, a guarded call of the student's function,
and comparisons whose failure messages tell the student what went wrong.

Every test draws a fresh seed (:func:`fresh_seed`), so the expected numbers change from run to run: a
submission cannot pass by copying values, only by computing them. The seed is in failure messages.
"""
from __future__ import annotations

import os

import torch
from torch import nn

_seed = None


def fresh_seed() -> int:
    """Seed torch's global generator from the OS and return the seed (named in failure messages)."""
    global _seed
    _seed = int.from_bytes(os.urandom(4), "little")
    torch.manual_seed(_seed)
    return _seed


def random_mlp(d_in: int = 4, hidden: int = 8, classes: int = 3, depth: int = 2, activation=nn.ReLU) -> nn.Sequential:
    """A random MLP ``(N, d_in) -> (N, classes)`` in eval mode."""
    layers, d = [], d_in
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), activation()]
        d = hidden
    layers.append(nn.Linear(d, classes))
    return nn.Sequential(*layers).eval()


def random_cnn(channels: int = 3, classes: int = 4) -> nn.Sequential:
    """A random small CNN ``(N, channels, H, W) -> (N, classes)`` with max-pooling, in eval mode."""
    return nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(32, classes)).eval()


def _snapshot(objects):
    state = []
    for obj in objects:
        if isinstance(obj, nn.Module):
            state.append((obj, {k: v.detach().clone() for k, v in obj.state_dict().items()},
                          {m: m.training for m in obj.modules()}))
        elif isinstance(obj, torch.Tensor):
            state.append((obj, obj.detach().clone(), None))
    return state


def call(function, *args, **kwargs):
    """Call the student's ``function``; fail clearly if it changes the model, the inputs or torch's global
    state (gradients switched off, default dtype); the global state is restored for the rest of the test."""
    name = getattr(function, "__name__", "your function")
    if not callable(function):
        raise AssertionError(f"`{name}` is not a function")
    grad, dtype = torch.is_grad_enabled(), torch.get_default_dtype()
    before = _snapshot(list(args) + list(kwargs.values()))
    try:
        result = function(*args, **kwargs)
    finally:
        changed_grad, changed_dtype = torch.is_grad_enabled() != grad, torch.get_default_dtype() != dtype
        torch.set_grad_enabled(grad)
        torch.set_default_dtype(dtype)
    if changed_grad:
        raise AssertionError(f"`{name}` switched gradients off globally (torch.set_grad_enabled(False)) and left "
                             f"them off: use `with torch.no_grad():` or leave the global state as it was")
    if changed_dtype:
        raise AssertionError(f"`{name}` changed torch's default dtype and left it changed: leave global state alone")
    for obj, saved, modes in before:
        if isinstance(obj, nn.Module):
            now = obj.state_dict()
            for key, value in saved.items():
                if key not in now or now[key].shape != value.shape or not torch.equal(now[key].detach(), value):
                    raise AssertionError(f"`{name}` changed the model in place (its {key!r} is different after the "
                                         f"call): an explanation must leave the model as it found it")
            if any(m.training != t for m, t in modes.items()):
                raise AssertionError(f"`{name}` changed the model's train/eval mode and did not restore it")
        elif obj.shape != saved.shape or not torch.equal(obj.detach(), saved):
            raise AssertionError(f"`{name}` changed its input tensor in place: work on a copy")
    return result


def check_tensor(result, shape, what: str = "the result") -> torch.Tensor:
    """``result`` must be a finite floating tensor of ``shape``."""
    if result is None:
        raise AssertionError(f"{what} is None: did you forget the `return`?")
    if not isinstance(result, torch.Tensor):
        raise AssertionError(f"{what} must be a torch.Tensor, got {type(result).__name__}")
    if tuple(result.shape) != tuple(shape):
        raise AssertionError(f"{what} has shape {tuple(result.shape)}, expected {tuple(shape)}")
    if not result.is_floating_point():
        raise AssertionError(f"{what} must be a floating-point tensor, got dtype {result.dtype}")
    if not torch.isfinite(result).all():
        raise AssertionError(f"{what} contains NaN or infinite values")
    return result


def assert_close(result, expected: torch.Tensor, what: str = "the result", rtol: float = 1e-4, atol: float = 1e-5):
    """``result`` must be a finite tensor of ``expected``'s shape, equal to it within tolerance."""
    result = check_tensor(result, expected.shape, what)
    got, want = result.detach().double().cpu(), expected.detach().double().cpu()
    if not torch.allclose(got, want, rtol=rtol, atol=atol):
        diff = (got - want).abs()
        i = tuple(int(j) for j in torch.nonzero(diff == diff.max())[0])
        raise AssertionError(f"{what} is wrong: max |yours - expected| = {diff.max():.3g} at index {i} "
                             f"(yours {got[i]:.6g}, expected {want[i]:.6g}; random seed {_seed})")
    return result


def reference_gradient(model: nn.Module, inputs: torch.Tensor, target) -> torch.Tensor:
    """d model(x)[n, target[n]] / d x[n] for every example (the graders' reference, plain autograd)."""
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1).expand(inputs.shape[0])
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
    return grad
