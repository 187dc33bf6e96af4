"""Helpers for grading tests (they run in the TRUSTED grader process, never in the worker).

- :func:`call` is the only contact with the student: ``call(submission.f, model, x, target)`` sends the
  arguments to the worker as data, runs the student's ``f`` there and returns its value as plain data
  (new tensors built by the grader). Models must come from a builder (:func:`random_mlp`,
  :func:`random_cnn`, :func:`load_model`, :func:`saturating`, :func:`circle`) or be made of standard
  ``torch.nn`` layers only (see :mod:`~xai_course.grading.builders`).
- :func:`fresh_seed` draws a new seed for every test (named in failure messages): a submission cannot
  pass by copying numbers, only by computing them.
- :func:`check_tensor` and :func:`assert_close` validate a returned value and explain what is wrong.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from . import builders

_seed = None


def fresh_seed() -> int:
    """Seed torch's global generator from the OS and return the seed (named in failure messages)."""
    global _seed
    _seed = int.from_bytes(os.urandom(4), "little")
    torch.manual_seed(_seed)
    return _seed


def random_mlp(d_in: int = 4, hidden: int = 8, classes: int = 3, depth: int = 2, activation=nn.ReLU) -> nn.Sequential:
    """A random MLP ``(N, d_in) -> (N, classes)`` in eval mode (standard layers: sent by structure)."""
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


def load_model(name: str) -> nn.Module:
    """``xai_course.models.load(name)`` (trained weights), tagged so that it can be sent to the worker."""
    from xai_course import models

    model = models.load(name)
    model._xai_recipe = ("model", {"name": name})
    return model


def saturating() -> nn.Module:
    """The saturating toy of chapter 2 (``xai_course.models.Saturating``), tagged."""
    return builders.BUILDERS["saturating"]()


def circle() -> nn.Module:
    """The circle toy of chapter 1 (``xai_course.models.Circle``), tagged."""
    return builders.BUILDERS["circle"]()


def call(function, *args, time_limit=None, **kwargs):
    """Call the student's ``function`` with ``args`` in the worker and return its value.

    Fails the test with a message for the student when the function raises (the exception is re-raised
    as the same builtin type, e.g. ValueError, so ``pytest.raises`` works), runs past the time limit
    (``time_limit`` seconds, default the grader's ``--timeout``), crashes, returns something that cannot be
    graded, changes the model or its input tensors in place, or leaves gradients off / the default dtype
    changed."""
    remote = getattr(function, "_xai_remote", None)
    if remote is not None:
        return remote(args, kwargs, time_limit)
    if not callable(function):
        raise AssertionError(f"`{getattr(function, '__name__', function)}` is not a function")
    return function(*args, **kwargs)  # a local function (a test of the tests)


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
