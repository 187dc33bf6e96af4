"""Extra test architectures and a Grad-CAM layer picker; the Captum-compatible twins themselves live in
the package (:mod:`xai_course.models.twins`, shared with the chapters) and are re-exported here.

The tests compare ours on the original model with Captum's on its twin (same function, every hooked
nonlinearity module used once, out of place, followed by a no-op); see the twins module for why.
"""
from __future__ import annotations

import copy
import functools
from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from conftest import make_architecture
from xai_course.models.twins import (HOOKED, Dispatcher, ResetDispatchers, captum_input,  # noqa: F401
                                     captum_twin, module_calls, without_overlapping_pools)


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


def assert_matches_captum_rule(method, captum_class, arch: str) -> None:
    """A method that is the gradient with one ReLU backward rule replaced (guided backprop, DeConvNet)
    against Captum's class of the same rule on ``arch``: through the Captum twin, and on the model itself
    where it reuses no module (the rule is stateless, so Captum is right on reused ReLU modules too)."""
    model, x, target = make_any_architecture(arch)
    ours = method(model, x, target)
    assert ours.shape == x.shape and ours.abs().max() > 0
    for reference in ([captum_twin(model, x)] + ([] if hasattr(model, "as_modules") else [model])):
        theirs = captum_class(reference).attribute(x, target=target)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6 * theirs.abs().max().item())


def assert_matches_captum_rule_in_double(method, captum_class) -> None:
    """The same in float64 on the ResNet-style net: the result stays float64 and agrees to float64 error."""
    model, x, target = make_any_architecture("resnet_style")
    model, x = model.double(), x.double()
    ours = method(model, x, target)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, captum_class(model).attribute(x, target=target))
