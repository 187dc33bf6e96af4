"""Captum-compatible twins of the test models, extra test architectures, and a Grad-CAM layer picker.

Captum's hook-based DeepLift (and guided backprop) keys its rules on nonlinearity *modules*, which breaks
where our call-based engine does not:

- a ReLU module called more than once per forward pass (torchvision's BasicBlock, the course ResNet,
  ``resnet_style``): Captum refuses it, or would mix the two calls' inputs;
- a hooked ReLU module whose output goes straight into a hooked MaxPool module: Captum's
  summation-to-delta breaks (delta ~5 on the course CNN);
- a *functional* nonlinearity (``F.relu(x)`` in ``forward``): Captum never sees it and uses the gradient.

:func:`captum_twin` returns a deep copy of a model in which every nonlinearity module Captum hooks is
replaced by a :class:`Dispatcher` holding one fresh (out-of-place) copy per call, used in turn, each
followed by a no-op ``x * 1.0`` that keeps it from feeding a MaxPool directly. A model may provide
``as_modules()``, an equivalent model (sharing its parameters) with modules for its functional calls.
The twin computes exactly the same function (``x * 1.0`` is exact): the reference's attributions on the
twin are the ones the original deserves. The tests compare ours on the original with Captum's on the twin.

A further Captum limitation, not fixable by a twin: its DeepLift max-pool rule scatters the output
differences back with ``max_unpool``, which *overwrites* instead of adding where pooling windows overlap
(torchvision's stem ``MaxPool2d(3, stride=2, padding=1)``), so its summation-to-delta fails there (delta
~0.16 on ``torchvision_resnet18``). :func:`without_overlapping_pools` swaps such pools for
non-overlapping ones of the same output size, for parity tests only.
"""
from __future__ import annotations

import copy
import functools
from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from conftest import make_architecture

# the nonlinearity modules Captum's DeepLift hooks (captum.attr._core.deep_lift.SUPPORTED_NON_LINEAR)
HOOKED = (nn.ReLU, nn.ELU, nn.Sigmoid, nn.Tanh, nn.Softmax)


class Dispatcher(nn.Module):
    """Stands for one nonlinearity module called ``calls`` times: the i-th call uses ``copies[i]``."""

    def __init__(self, module: nn.Module, calls: int):
        super().__init__()
        fresh = copy.deepcopy(module)
        if hasattr(fresh, "inplace"):
            fresh.inplace = False
        self.copies = nn.ModuleList(copy.deepcopy(fresh) for _ in range(calls))
        self.count = 0

    def forward(self, x):
        module = self.copies[self.count % len(self.copies)]
        self.count += 1
        return module(x) * 1.0          # the no-op separates the hooked module from a hooked MaxPool after it


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
    """How many times each module of ``model`` of the given kinds runs in one forward pass on ``inputs``."""
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


def captum_twin(model: nn.Module, inputs: torch.Tensor, layer: nn.Module | None = None):
    """A copy of ``model`` (eval mode, same function) that Captum's DeepLift and GuidedBackprop handle correctly.

    With a ``layer`` of ``model``, returns ``(twin, the twin's module computing that layer's output)``.
    """
    source = model.as_modules() if hasattr(model, "as_modules") else model
    twin, twin_layer = copy.deepcopy((source, layer))
    twin.eval()
    calls = module_calls(twin, inputs, HOOKED)
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, HOOKED):
                dispatcher = Dispatcher(child, max(1, calls[child]))
                setattr(parent, name, dispatcher)
                twin_layer = dispatcher if child is twin_layer else twin_layer
    twin = ResetDispatchers(twin).eval()
    with torch.no_grad():
        torch.testing.assert_close(twin(inputs), model(inputs), rtol=0, atol=0, msg="the twin is another function")
    assert all(n <= 1 for n in module_calls(twin, inputs, HOOKED).values())
    if layer is None:
        return twin
    assert any(m is twin_layer for m in twin.modules()), "the layer is not part of the twin's computation"
    return twin, twin_layer


def without_overlapping_pools(model: nn.Module, inputs: torch.Tensor) -> nn.Module:
    """A copy of ``model`` whose max-pools with overlapping windows (stride < kernel) are non-overlapping."""
    twin = copy.deepcopy(model).eval()
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                k, s = nn.modules.utils._pair(child.kernel_size), nn.modules.utils._pair(child.stride)
                if any(si < ki for si, ki in zip(s, k)):
                    setattr(parent, name, nn.MaxPool2d(s, s, ceil_mode=True))
    twin.eval()
    with torch.no_grad():
        assert twin(inputs).shape == model(inputs).shape
    return twin


# ------------------------------------------------------------------------------------- extra architectures
class FunctionalCNN(nn.Module):
    """Functional nonlinearities only: F.relu -> F.max_pool2d, torch.relu, Tensor.relu, F.relu(inplace=True)."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.fc1 = nn.Linear(32, 12)
        self.fc2 = nn.Linear(12, 12)
        self.fc3 = nn.Linear(12, classes)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = torch.relu(self.conv2(h))
        h = F.adaptive_avg_pool2d(h, 2).flatten(1)
        h = F.relu(self.fc1(h), inplace=True)
        return self.fc3(self.fc2(h).relu())

    def as_modules(self) -> nn.Module:
        """The same function with ReLU modules (sharing this model's parameters)."""
        return nn.Sequential(self.conv1, nn.ReLU(), nn.MaxPool2d(2), self.conv2, nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                             nn.Flatten(), self.fc1, nn.ReLU(), self.fc2, nn.ReLU(), self.fc3).eval()


class SigmoidCNN(nn.Module):
    """No ReLU at all: Sigmoid feeding a MaxPool, Tanh, ELU."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.act1 = nn.Sigmoid()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.act2 = nn.Tanh()
        self.gap = nn.AdaptiveAvgPool2d(2)
        self.fc1 = nn.Linear(32, 10)
        self.act3 = nn.ELU()
        self.fc2 = nn.Linear(10, classes)

    def forward(self, x):
        h = self.gap(self.act2(self.conv2(self.pool(self.act1(self.conv1(x))))))
        return self.fc2(self.act3(self.fc1(h.flatten(1))))


EXTRA_ARCHITECTURES = ["functional_cnn", "sigmoid_cnn"]


@functools.lru_cache(maxsize=None)
def _built(name: str, seed: int):
    if name not in EXTRA_ARCHITECTURES:
        return make_architecture(name, seed)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = {"functional_cnn": FunctionalCNN, "sigmoid_cnn": SigmoidCNN}[name]().eval()
    return model, torch.rand(3, 3, 8, 8, generator=gen) * 2 - 0.5, torch.tensor([0, 1, 2])


def make_any_architecture(name: str, seed: int = 0, n: int = 2):
    """(model in eval mode, inputs, targets) for a conftest architecture or one of the extra ones here,
    with at most ``n`` examples (the tests stay fast on 2 CPU cores). Each call gets its own copies of a
    model built once (building torchvision's resnet18 costs more than explaining it)."""
    model, x, target = copy.deepcopy(_built(name, seed))
    return model, x[:n].clone(), target[:n].clone()


def grad_cam_layer(model: nn.Module, inputs: torch.Tensor) -> str:
    """A sensible Grad-CAM layer for any CNN: the last module (in the order modules finish) that runs once
    and outputs feature maps larger than 1 x 1; its dotted name."""
    finished = []
    handles = [m.register_forward_hook(lambda m, a, out, name=name: finished.append((name, m, out)))
               for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for h in handles:
            h.remove()
    calls = Counter(m for _, m, _ in finished)
    for name, m, out in reversed(finished):
        if calls[m] == 1 and isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[2] * out.shape[3] > 1:
            return name
    raise AssertionError("the model has no layer with feature maps")
