"""Reference twins: copies of a model that hook-based libraries (Captum) explain correctly.

Captum's hook-based DeepLift (and guided backprop) keys its rules on nonlinearity *modules*, which
breaks where the course's call-based engine does not:

- a ReLU module called more than once per forward pass (torchvision's BasicBlock, the course ResNet):
  Captum refuses it, or would mix the two calls' inputs;
- a hooked ReLU module whose output goes straight into a hooked MaxPool module: the two modules'
  backward hooks interact and Captum's summation-to-delta breaks (Chapter 3 measures it on
  ``shapes_cnn``);
- a *functional* nonlinearity (``F.relu(x)`` in ``forward``): Captum never sees it.

:func:`captum_twin` returns a deep copy in which every nonlinearity module Captum hooks is replaced by
a :class:`Dispatcher` holding one fresh, out-of-place copy per call, used in turn, each followed by a
no-op ``x * 1.0`` that keeps it from feeding a MaxPool directly. A model may provide ``as_modules()``,
an equivalent model (sharing its parameters) with modules for its functional calls. The twin computes
exactly the same function (``x * 1.0`` is exact), so the reference's attributions on the twin are the
ones the original deserves. :func:`without_overlapping_pools` works around a further Captum
limitation (its max-pool rule overwrites where windows overlap), for parity tests only.

Nothing here imports Captum: these are plain PyTorch modules.
"""
from __future__ import annotations

import copy
from collections import Counter
from typing import Optional

import torch
from torch import nn

# the nonlinearity modules Captum's DeepLift hooks (captum.attr._core.deep_lift.SUPPORTED_NON_LINEAR)
HOOKED = (nn.ReLU, nn.ELU, nn.Sigmoid, nn.Tanh, nn.Softmax)


def captum_input(t: torch.Tensor) -> torch.Tensor:
    """A detached copy of ``t`` that requires gradients (Captum warns when its inputs do not)."""
    return t.detach().clone().requires_grad_(True)


class Dispatcher(nn.Module):
    """Stands for one nonlinearity module called ``calls`` times: the i-th call uses ``copies[i]``.

    With ``no_op=True`` each call's output goes through ``x * 1.0``, a separate autograd node that
    keeps a hooked module from feeding the next hooked module (a MaxPool) directly.
    """

    def __init__(self, module: nn.Module, calls: int, no_op: bool = True):
        super().__init__()
        fresh = copy.deepcopy(module)
        if hasattr(fresh, "inplace"):
            fresh.inplace = False
        self.copies = nn.ModuleList(copy.deepcopy(fresh) for _ in range(calls))
        self.no_op = no_op
        self.count = 0

    def forward(self, x):
        module = self.copies[self.count % len(self.copies)]
        self.count += 1
        out = module(x)
        return out * 1.0 if self.no_op else out


class ResetDispatchers(nn.Module):
    """Wraps the twin so that every forward pass starts each dispatcher at its first copy."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        for m in self.model.modules():
            if isinstance(m, Dispatcher):
                m.count = 0
        return self.model(x)


def module_calls(model: nn.Module, inputs: torch.Tensor, kinds=(nn.Module,)) -> Counter:
    """How many times each module of the given kinds runs in one forward pass on ``inputs``."""
    calls: Counter = Counter()
    handles = [m.register_forward_pre_hook(lambda m, args: calls.update([m]))
               for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for h in handles:
            h.remove()
    return calls


def captum_twin(model: nn.Module, inputs: torch.Tensor, layer: Optional[nn.Module] = None,
                no_op: bool = True):
    """A copy of ``model`` (eval mode, same function) that Captum's hooks handle correctly.

    ``inputs``: a batch the model accepts (to count the calls of each module and to check that the
    twin computes the same function). ``no_op=False`` only splits reused modules (a control: it
    shows what the no-op alone changes). With a ``layer`` of ``model``, returns
    ``(twin, the twin's module computing that layer's output)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    source = model.as_modules() if hasattr(model, "as_modules") else model
    twin, twin_layer = copy.deepcopy((source, layer))
    twin.eval()
    calls = module_calls(twin, inputs, HOOKED)
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, HOOKED):
                dispatcher = Dispatcher(child, max(1, calls[child]), no_op)
                setattr(parent, name, dispatcher)
                twin_layer = dispatcher if child is twin_layer else twin_layer
    twin = ResetDispatchers(twin).eval()
    with torch.no_grad():
        if not torch.equal(twin(inputs), model(inputs)):
            raise AssertionError("the twin computes another function than the model")
    if any(n > 1 for n in module_calls(twin, inputs, HOOKED).values()):
        raise AssertionError("a nonlinearity module of the twin still runs more than once")
    if layer is None:
        return twin
    if not any(m is twin_layer for m in twin.modules()):
        raise ValueError("layer is not a module of model")
    return twin, twin_layer


def without_overlapping_pools(model: nn.Module, inputs: torch.Tensor) -> nn.Module:
    """A copy of ``model`` whose max-pools with overlapping windows are non-overlapping ones.

    Not the same function: for parity tests with Captum's DeepLift, whose max-pool rule overwrites
    where pooling windows overlap. The output shape is checked to stay the same.
    """
    twin = copy.deepcopy(model).eval()
    pair = nn.modules.utils._pair
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                k, s = pair(child.kernel_size), pair(child.stride)
                if any(si < ki for si, ki in zip(s, k)):
                    setattr(parent, name, nn.MaxPool2d(s, s, ceil_mode=True))
    twin.eval()
    with torch.no_grad():
        if twin(inputs).shape != model(inputs).shape:
            raise AssertionError("the non-overlapping pools change the output shape")
    return twin
