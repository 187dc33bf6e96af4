"""Toy "networks" whose attributions can be worked out by hand (chapters 1 and 2, and the tests).

Both take a batch ``(N, 2)`` and return a one-column output ``(N, 1)``, so ``target=0`` explains them.
"""
from __future__ import annotations

import torch
from torch import nn


class _Toy(nn.Module):
    """Toys have no dropout or BatchNorm, so train and eval mode agree: they start in eval mode."""

    def __init__(self):
        super().__init__()
        self.eval()


class Circle(_Toy):
    """f(x, y) = x^2 + y^2 - 9: negative inside the circle of radius 3 (class N), positive outside (P).

    Its gradient is (2x, 2y): it points away from the centre, and it is largest far from the boundary,
    where the decision is least in doubt.
    """

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return (xy**2).sum(1, keepdim=True) - 9.0


class Saturating(_Toy):
    """The saturating network of the DeepLIFT paper (Shrikumar et al., 2017, figure 1):

        h = ReLU(1 - i1 - i2),    y = 1 - h    (so y = min(1, i1 + i2)).

    For i1 + i2 > 1 the ReLU is off: dh/di = 0, so the gradient of y is zero although both inputs
    together fully explain y = 1. And dy/dh = -1 < 0, which is why guided backprop and the
    deconvolutional network give zero importance too.
    """

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(2, 1)
        self.relu = nn.ReLU()
        self.out = nn.Linear(1, 1)
        with torch.no_grad():
            self.hidden.weight.copy_(torch.tensor([[-1.0, -1.0]]))
            self.hidden.bias.fill_(1.0)
            self.out.weight.fill_(-1.0)
            self.out.bias.fill_(1.0)
        self.eval()

    def forward(self, i: torch.Tensor) -> torch.Tensor:
        return self.out(self.relu(self.hidden(i)))
