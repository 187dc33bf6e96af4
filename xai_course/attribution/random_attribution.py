"""The random attribution: a baseline that every explanation method must beat (chapter 13 and the labs).

Uniform noise in [0, 1) with the shape of ``inputs``, independent of the model: the null method of the
FullGrad reproducibility report's pixel-perturbation and ROAR experiments.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ._core import Target, check_call, make_generator, register


@register("random_attribution")
def random_attribution(model: nn.Module, inputs: torch.Tensor, target: Target, seed: Optional[int] = None) -> torch.Tensor:
    """Uniform random values with the shape of ``inputs`` (``seed``: reproducible; None: torch's generator)."""
    model, inputs, target = check_call(model, inputs, target)
    return torch.rand(inputs.shape, generator=make_generator(seed, inputs.device), device=inputs.device,
                      dtype=inputs.dtype)
