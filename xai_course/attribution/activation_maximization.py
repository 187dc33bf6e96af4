"""Activation maximisation (chapter 10): the input a model finds most typical of a class.

A *model-based* explanation (Montavon, Samek & Müller 2018, Section 3; Simonyan et al. 2013): instead of
explaining one decision, search for the input pattern x that the model scores highest for class c. The
three variants of the slides are one function; it maximises, by gradient ascent,

    J(x) = log p(ω_c | x) − λ ‖x‖²                     general AM (``l2`` = λ)
    J(x) = log p(ω_c | x) + log p(x)                   AM with an expert (``prior`` x ↦ log p(x))
    J(z) = log p(ω_c | g(z)) − λ ‖z‖²,  x = g(z)       AM in code space (``generator`` g)

with ``objective="log_prob"`` (the log-softmax, as the slides) or ``"logit"`` (the class score).
The ascent is gradient ascent, v ← v + α ∇J, one forward and backward pass a step, with the step
size α of Barzilai & Borwein (1988) for every example: α = sᵀs / (−sᵀy) from the last step s and the
change y of the gradient, the inverse of the curvature along the last step (``lr`` is the first step;
where the objective is not concave along the last step the next is 4x longer; a step is at most 10x
the last one and 10⁵·lr; a step that lowers J is taken again 4x shorter). A fixed step would have to
suit the steepest direction (a Gaussian prior fitted on images is very badly conditioned); this one
adapts, and reaches the closed-form maxima of the quadratic cases within 1% in the default 200 steps,
far-out maxima (a weak penalty) and condition numbers up to about 200 included (measured; at 10³
it needs more steps).

Not an attribution (it takes no ``inputs``), so it is not in :data:`METHODS`.
"""
from __future__ import annotations

import contextlib
import math
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import nn

from ._core import Target, check_int, check_model, check_target, explaining, fast_layout

STARTS = ("noise", "zeros")
OBJECTIVES = ("log_prob", "logit")
MAX_STEP = 1e5     # the adaptive step is at most MAX_STEP · lr (where the objective is nearly flat)


def _shape(value, name):
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (value,)
    if (not isinstance(value, (tuple, list, torch.Size)) or not value
            or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in value)):
        raise ValueError(f"{name} must be the shape of one example, a tuple of positive ints like (1, 16, 16), "
                         f"got {value!r}")
    return tuple(int(s) for s in value)


def _start(start, n, shape, device, dtype, generator, name):
    """The starting point (N, *shape) in ``dtype``: uniform noise in [0, 1) (standard normal for codes),
    zeros or given."""
    if isinstance(start, torch.Tensor):
        if not start.is_floating_point() or tuple(start.shape[-len(shape):]) != shape or start.ndim not in (
                len(shape), len(shape) + 1) or (start.ndim == len(shape) + 1 and start.shape[0] not in (1, n)):
            raise ValueError(f"start must be a float tensor {shape} or ({n}, *{shape}) for the {name}, "
                             f"got {tuple(start.shape)} {start.dtype}")
        if not torch.isfinite(start).all():
            raise ValueError("start must be finite")
        return start.detach().to(device=device, dtype=dtype).expand(n, *shape).clone()
    if start == "zeros":
        return torch.zeros(n, *shape, device=device, dtype=dtype)
    if start == "noise":
        draw = torch.randn if name == "code" else torch.rand
        return draw(n, *shape, generator=generator, dtype=dtype).to(device)
    raise ValueError(f"start must be 'noise', 'zeros' or a tensor, got {start!r}")


def activation_maximization(model: nn.Module, target: Target, shape, steps: int = 200, lr: float = 0.1,
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
    steps = check_int(steps, "steps")
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
    # the dtype of what takes v first (a float64 model gets float64 inputs)
    takes = generator if isinstance(generator, nn.Module) else model
    dtype = next((p.dtype for p in takes.parameters() if p.is_floating_point()), torch.get_default_dtype())
    v = _start(start, n, var_shape, device, dtype, rng, variable)
    with explaining(model), contextlib.ExitStack() as stack:
        for f in (generator, prior):     # a generator or prior that is a module: eval mode, restored after
            if isinstance(f, nn.Module):
                stack.enter_context(explaining(f))
        v = v.contiguous(memory_format=fast_layout(v, None if generator is not None else model))
        return _ascend(model, target, shape, v, steps, lr, l2, prior, generator, objective).contiguous()


def _ascend(model, target, shape, v, steps, lr, l2, prior, generator, objective):
    """Gradient ascent on v (the input, or the code) with Barzilai-Borwein steps, one model pass a step."""
    n, index, view = len(v), target[:, None], (-1,) + (1,) * (v.ndim - 1)
    step = torch.full((n,), float(lr), device=v.device, dtype=v.dtype)   # α_n, one per example
    best = None                                                   # (v, J, ∇J, ‖∇J‖²) of the best point so far
    for t in range(steps):               # ``steps`` model passes, as many as plain gradient ascent
        v = v.detach().requires_grad_(True)
        x = generator(v) if generator is not None else v
        if t == 0 and (not isinstance(x, torch.Tensor) or tuple(x.shape) != (n, *shape)):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"generator must map codes {tuple(v.shape)} to inputs {(n, *shape)}, gave {got}")
        out = _first_pass(model, x, n, shape, target) if t == 0 else model(x)
        J = (F.log_softmax(out, 1) if objective == "log_prob" else out).gather(1, index)[:, 0]
        if prior is not None:
            log_p = prior(x)                                                  # + log p(x)
            if t == 0 and (not isinstance(log_p, torch.Tensor) or tuple(log_p.shape) != (n,)):
                got = tuple(log_p.shape) if isinstance(log_p, torch.Tensor) else type(log_p).__name__
                raise ValueError(f"prior must return log p(x) of shape ({n},), got {got}")
            J = J + log_p
        (g,) = torch.autograd.grad(J.sum(), v)
        v, J = v.detach(), J.detach()
        if l2:      # − λ‖v‖² and its gradient −2λv in closed form: no autograd pass over the penalty
            J, g = J - l2 * _dot(v, v), g.add(v, alpha=-2 * l2)
        if best is None:
            best = v, J, g, _dot(g, g)
        else:                            # keep a step that did not lower J; else go back with a shorter step
            better = J >= best[1] - 1e-6 * best[1].abs()
            # the step just taken is s = v − v_best = α ∇J_best, and y = ∇J − ∇J_best, so
            # sᵀs = α² ‖∇J_best‖² and sᵀy = α (∇J_best·∇J − ‖∇J_best‖²): one dot product a step
            gg, gn = best[3], _dot(g, g)
            ss, sy = step * step * gg, step * (_dot(best[2], g) - gg)
            # α = sᵀs / (−sᵀy): the inverse of the curvature along the step just taken; where J is not
            # concave along it, 4x the last step. At most 10x the last step: one step's estimate of a
            # tiny curvature (common on ReLU networks) does not throw v far away
            bb = torch.where(sy < 0, ss / (-sy).clamp(min=1e-30), 4 * step)
            step = torch.where(better, torch.minimum(bb, 10 * step).clamp(max=MAX_STEP * lr), step / 4)
            if better.all():             # the common case: no copying
                best = v, J, g, gn
            else:
                keep = better.view(view)
                best = tuple(torch.where(keep.expand_as(a) if a.ndim > 1 else better, a, b)
                             for a, b in zip((v, J, g), best)) + (torch.where(better, gn, best[3]),)
        if t < steps - 1:
            v = torch.addcmul(best[0], step.view(view), best[2])                 # v ← v + α ∇J
    with torch.no_grad():
        return (generator(best[0]) if generator is not None else best[0]).detach()


def _dot(a, b):
    """Per-example dot products (N,): summed over the non-batch dimensions in place, since flattening a
    channels-last tensor would copy it."""
    return (a * b).sum(tuple(range(1, a.ndim))) if a.ndim > 1 else a * b


def _first_pass(model, x, n, shape, target):
    try:
        out = model(x)
    except RuntimeError as error:
        raise ValueError(f"the model cannot take inputs of shape {(n, *shape)} (check shape): {error}") from None
    _check_output(out, n, target)
    return out


def _check_output(out, n, target):
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != n:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model must return logits of shape (N, classes) = ({n}, classes), got {got}")
    if ((target < 0) | (target >= out.shape[1])).any():
        raise ValueError(f"target must be class indices in [0, {out.shape[1] - 1}] (the model has "
                         f"{out.shape[1]} outputs), got {target.tolist()}")
