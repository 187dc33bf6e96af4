"""Shared fixtures: the four test architectures of the GUIDE, each with a batch of inputs."""
from __future__ import annotations

import os


import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xai_course import models

torch.set_num_threads(min(2, os.cpu_count() or 1))


class TwiceReLUNet(nn.Module):
    """ResNet-style: BatchNorm (eval), a skip connection, in-place ReLUs and one ReLU module used twice."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)) + h)  # the same ReLU module, a second time
        return self.fc(torch.flatten(self.pool(h), 1))


def _randomise_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    """Give BatchNorm layers non-trivial running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


def make_architecture(name: str, seed: int = 0):
    """(model in eval mode, inputs, targets) for one of the test architectures."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    if name == "mlp":
        model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))
        x = torch.randn(5, 10, generator=gen)
    elif name == "course_cnn":
        model = models.load("shapes_cnn")
        x = models_data_batch(seed)
    elif name == "resnet_style":
        model = _randomise_batchnorm(TwiceReLUNet(), seed)
        x = torch.rand(4, 3, 16, 16, generator=gen)
    elif name == "course_resnet":
        model = models.load("shapes_resnet")
        x = models_data_batch(seed)
    elif name == "torchvision_resnet18":
        import torchvision

        model = _randomise_batchnorm(torchvision.models.resnet18(weights=None, num_classes=10), seed)
        x = torch.rand(2, 3, 64, 64, generator=gen)
    else:
        raise KeyError(name)
    model.eval()
    with torch.no_grad():
        classes = model(x).shape[1]
    target = torch.randint(0, classes, (x.shape[0],), generator=gen)
    return model, x, target


def models_data_batch(seed: int, n: int = 4) -> torch.Tensor:
    from xai_course.data import shapes

    return shapes(n, seed=10_000 + seed).images


ARCHITECTURES = ["mlp", "course_cnn", "resnet_style", "course_resnet", "torchvision_resnet18"]


@pytest.fixture(params=ARCHITECTURES)
def architecture(request):
    return make_architecture(request.param)


# ---- two small extra architectures (smooth; functional ReLU and max-pooling) and one maker for all
class SigmoidNet(nn.Module):
    """A smooth MLP (sigmoids): nothing piecewise-linear for the quadratures to exploit."""

    def __init__(self):
        super().__init__()
        self.a, self.act, self.b = nn.Linear(6, 8), nn.Sigmoid(), nn.Linear(8, 3)

    def forward(self, x):
        return self.b(self.act(self.a(x)))


class FunctionalConvNet(nn.Module):
    """Functional ReLU and max-pooling (no modules to hook), as a student would write it."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(F.max_pool2d(F.relu(self.conv(x)), 2), 1))


def make(name: str, seed: int = 0, n: int = 2):
    """(model, inputs, target) for any architecture of ALL_ARCHITECTURES, ``n`` examples at most
    (two keep the 64x64 architectures fast)."""
    if name in ARCHITECTURES:
        model, x, target = make_architecture(name, seed)
        return model, x[:n], target[:n]
    torch.manual_seed(seed)
    model = {"sigmoid_mlp": SigmoidNet, "functional_cnn": FunctionalConvNet}[name]().eval()
    x = torch.randn(3, 6) if name == "sigmoid_mlp" else torch.rand(3, 3, 8, 8)
    return model, x[:n], torch.tensor([0, 2, 1])[:n]


ALL_ARCHITECTURES = ARCHITECTURES + ["sigmoid_mlp", "functional_cnn"]


# ---------------------------------------------------------------- float32 tolerances
FLOAT32_EPS = torch.finfo(torch.float32).eps  # 1.19e-7: the spacing of float32 numbers near 1


def float32_atol(*magnitudes, ulps: float = 100.0) -> float:
    """An absolute tolerance for comparing float32 results: ``ulps`` × eps × the largest magnitude given
    (tensors: their largest |element|; numbers). An element near zero that comes out of sums and
    cancellations of terms of size S carries an error of a few eps × S, whatever its own size, and the
    error changes with the order of the sums (AVX2 or AVX-512 kernels, batch size, thread count). 100 eps
    (1.2e-5 relative to the magnitudes) covers that with room and stays orders of magnitude below the
    errors the tests look for (a wrong rule or a wrong sum is off by a sizeable fraction of S)."""
    scale = max((float(m.detach().abs().max()) if isinstance(m, torch.Tensor) else abs(float(m)))
                for m in magnitudes)
    return ulps * FLOAT32_EPS * max(scale, FLOAT32_EPS)


# ---------------------------------------------------------------- hypothesis: the same examples everywhere
# Property tests draw their examples from a fixed seed (derandomize) and keep no example database: every
# machine and every run tests the same cases, so a pass or a failure is reproducible, not luck.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("course", derandomize=True, database=None, deadline=None)
_hypothesis_settings.load_profile("course")
