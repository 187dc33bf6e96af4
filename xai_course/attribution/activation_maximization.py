"""Activation maximisation (chapter 10): the input a model finds most typical of a class.

A *model-based* explanation (Montavon, Samek & Müller 2018, Section 3; Simonyan et al. 2013): instead of
explaining one decision, search for the input pattern x that the model scores highest for class c. The
three variants of the slides are one function; it maximises, by gradient ascent,

    J(x) = log p(ω_c | x) − λ ‖x‖²                     general AM (``l2`` = λ)
    J(x) = log p(ω_c | x) + log p(x)                   AM with an expert (``prior`` x ↦ log p(x))
    J(z) = log p(ω_c | g(z)) − λ ‖z‖²,  x = g(z)       AM in code space (``generator`` g)

with ``objective="log_prob"`` (the log-softmax, as the slides) or ``"logit"`` (the class score).
The ascent is L-BFGS (Liu & Nocedal 1989) with a strong-Wolfe line search, at most ``steps`` evaluations
of J and its gradient (one forward and backward pass each): plain gradient ascent needs a step size
matched to the curvature (a Gaussian prior fitted on images is very badly conditioned), L-BFGS estimates
it, and reaches the closed-form maxima of the quadratic cases to float precision. ``lr`` scales its steps.

Not an attribution (it takes no ``inputs``), so it is not in :data:`METHODS`.
"""
from __future__ import annotations

import contextlib
import math
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import nn

from ._core import Target, check_model, check_target, explaining

STARTS = ("noise", "zeros")
OBJECTIVES = ("log_prob", "logit")


def _shape(value, name):
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (value,)
    if (not isinstance(value, (tuple, list, torch.Size)) or not value
            or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in value)):
        raise ValueError(f"{name} must be the shape of one example, a tuple of positive ints like (1, 16, 16), "
                         f"got {value!r}")
    return tuple(int(s) for s in value)


def _start(start, n, shape, device, generator, name):
    """The starting point (N, *shape): uniform noise in [0, 1) (standard normal for codes), zeros or given."""
    if isinstance(start, torch.Tensor):
        if not start.is_floating_point() or tuple(start.shape[-len(shape):]) != shape or start.ndim not in (
                len(shape), len(shape) + 1) or (start.ndim == len(shape) + 1 and start.shape[0] not in (1, n)):
            raise ValueError(f"start must be a float tensor {shape} or ({n}, *{shape}) for the {name}, "
                             f"got {tuple(start.shape)} {start.dtype}")
        if not torch.isfinite(start).all():
            raise ValueError("start must be finite")
        return start.detach().to(device).expand(n, *shape).clone()
    if start == "zeros":
        return torch.zeros(n, *shape, device=device)
    if start == "noise":
        draw = torch.randn if name == "code" else torch.rand
        return draw(n, *shape, generator=generator).to(device)
    raise ValueError(f"start must be 'noise', 'zeros' or a tensor, got {start!r}")


def activation_maximization(model: nn.Module, target: Target, shape, steps: int = 200, lr: float = 1.0,
                            l2: float = 0.0, prior=None, generator=None, code_shape=None, start="noise",
                            objective: str = "log_prob", seed: int | None = None) -> torch.Tensor:
    """Inputs ``(N, *shape)`` that maximise ``objective(model(x))[target] − l2·‖·‖² + prior(x)``.

    ``target``: a class (N = 1) or N classes. ``shape``: one input's shape, e.g. (1, 16, 16).
    ``prior``: a callable x ↦ log p(x) of shape (N,) (AM with an expert). ``generator``: a callable
    z ↦ x; then the code z of shape ``code_shape`` is optimised, the L2 penalty is on z, and g(z) is
    returned (AM in code space). ``start``: ``"noise"`` (x uniform in [0, 1), z standard normal, drawn
    with ``seed``), ``"zeros"`` or a tensor (a real image, a class mean; a code with a generator).
    """
    check_model(model)
    shape = _shape(shape, "shape")
    single = isinstance(target, Integral) and not isinstance(target, bool) or (
        isinstance(target, torch.Tensor) and target.ndim == 0)
    n = 1 if single else target.numel() if isinstance(target, torch.Tensor) else (
        len(target) if isinstance(target, (list, tuple)) else 1)
    target = check_target(target, n)
    for name, value in (("steps", steps),):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    for name, value, low in (("lr", lr, 0.0), ("l2", l2, None)):
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or (
                value <= 0 if low is not None else value < 0):
            raise ValueError(f"{name} must be a finite number {'> 0' if low is not None else '>= 0'}, got {value!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    for name, f in (("prior", prior), ("generator", generator)):
        if f is not None and not callable(f):
            raise TypeError(f"{name} must be a callable (x -> log p(x) for prior, z -> x for generator), "
                            f"got {type(f).__name__}")
    if (generator is None) != (code_shape is None):
        raise ValueError("generator and code_shape go together: give both for AM in code space, or neither")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, Integral)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    rng = torch.Generator().manual_seed(seed) if seed is not None else None
    target = target.to(device)
    variable = "code" if generator is not None else "input"
    var_shape = _shape(code_shape, "code_shape") if generator is not None else shape
    if isinstance(start, torch.Tensor) and start.ndim == len(var_shape) + 1 and single:
        target = target[:1].expand(start.shape[0])  # one class, a batch of starting points
    n = len(target)
    v = _start(start, n, var_shape, device, rng, variable)
    with explaining(model), contextlib.ExitStack() as stack:
        for f in (generator, prior):     # a generator or prior that is a module: eval mode, restored after
            if isinstance(f, nn.Module):
                stack.enter_context(explaining(f))
        return _ascend(model, target, shape, v, steps, lr, l2, prior, generator, objective)


def _ascend(model, target, shape, v, steps, lr, l2, prior, generator, objective):
    """Maximise J by L-BFGS on v (the input, or the code), at most ``steps`` evaluations of J and ∇J."""
    n, index, checked = len(v), target[:, None], []

    def negative_J():                    # L-BFGS minimises: −J(v) and its gradient, one model pass each
        optimiser.zero_grad()
        x = generator(v) if generator is not None else v
        if not checked and (not isinstance(x, torch.Tensor) or tuple(x.shape) != (n, *shape)):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"generator must map codes {tuple(v.shape)} to inputs {(n, *shape)}, gave {got}")
        if not checked:
            try:
                out = model(x)
            except RuntimeError as error:
                raise ValueError(f"the model cannot take inputs of shape {(n, *shape)} (check shape): {error}") from None
            _check_output(out, n, target)
        else:
            out = model(x)
        score = (F.log_softmax(out, 1) if objective == "log_prob" else out).gather(1, index).sum()
        J = score - l2 * v.pow(2).sum() if l2 else score                     # log p(ω_c|x) − λ‖v‖²
        if prior is not None:
            log_p = prior(x)                                                  # + log p(x)
            if not checked and (not isinstance(log_p, torch.Tensor) or tuple(log_p.shape) != (n,)):
                got = tuple(log_p.shape) if isinstance(log_p, torch.Tensor) else type(log_p).__name__
                raise ValueError(f"prior must return log p(x) of shape ({n},), got {got}")
            J = J + log_p.sum()
        checked.append(True)
        (-J).backward(inputs=[v])
        return -J.detach()

    v.requires_grad_(True)
    optimiser = torch.optim.LBFGS([v], lr=lr, max_iter=steps, max_eval=steps, history_size=20,
                                  tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe")
    optimiser.step(negative_J)
    with torch.no_grad():
        return (generator(v) if generator is not None else v).detach()


def _check_output(out, n, target):
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != n:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model must return logits of shape (N, classes) = ({n}, classes), got {got}")
    if ((target < 0) | (target >= out.shape[1])).any():
        raise ValueError(f"target must be class indices in [0, {out.shape[1] - 1}] (the model has "
                         f"{out.shape[1]} outputs), got {target.tolist()}")
