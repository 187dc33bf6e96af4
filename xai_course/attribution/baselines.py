"""Baselines x' for the methods that compare the input with a reference (chapters 3 and 4).

IG, DeepLIFT and their SHAP variants explain f(x) - f(x') for a baseline x' meaning "no signal". Slide
003 names the usual choices; ``make_baseline(inputs, name)`` builds them per image:

- ``"zeros"`` (also ``None``): all zeros, Captum's default;
- ``"black"``: 0.0 everywhere, the same as ``"zeros"``: the course's images are in [0, 1], so black is
  zero in every chapter (one meaning for the whole course; Quantus's "black" is the per-image minimum,
  which is ``"min"`` here);
- ``"min"``, ``"white"``: each image's own minimum / maximum value (the darkest / brightest it has);
- ``"grey"``: the midpoint (min + max) / 2 of each image;
- ``"blurred"``: the image under a Gaussian blur of standard deviation ``max(H, W) / 10`` pixels
  (edges and texture removed, colours kept);
- ``"uniform"``: uniform noise in each image's [min, max], drawn from ``seed``;
- a tensor broadcastable to ``inputs`` (one baseline for all images, or one per image).
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch

NAMES = ("zeros", "black", "min", "grey", "white", "blurred", "uniform")
Baseline = Union[None, str, float, torch.Tensor]


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Each channel of ``images`` (N, C, H, W) blurred with a Gaussian of ``sigma`` pixels (reflected edges)."""
    radius = max(1, min(int(3 * sigma + 0.5), min(images.shape[-2:]) - 1))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    x = torch.nn.functional.pad(images, (radius, radius, radius, radius), mode="reflect")
    x = torch.nn.functional.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return torch.nn.functional.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def make_baseline(inputs: torch.Tensor, baseline: Baseline = None, seed: Optional[int] = 0,
                  name: str = "baseline") -> torch.Tensor:
    """The baseline for each example of ``inputs``, with the shape of ``inputs`` (see the module doc)."""
    per_image = inputs.detach().flatten(1)
    shape = (-1,) + (1,) * (inputs.ndim - 1)
    low, high = per_image.min(1).values.view(shape), per_image.max(1).values.view(shape)
    if baseline is None or (isinstance(baseline, str) and baseline in ("zeros", "black")):
        return torch.zeros_like(inputs)
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        if not math.isfinite(baseline):
            raise ValueError(f"{name} must be finite, got {baseline!r}")
        return torch.full_like(inputs, float(baseline))
    if isinstance(baseline, str):
        if baseline == "min":
            return low.expand_as(inputs).clone()
        if baseline == "white":
            return high.expand_as(inputs).clone()
        if baseline == "grey":
            return ((low + high) / 2).expand_as(inputs).clone()
        if baseline == "blurred":
            if inputs.ndim != 4:
                raise ValueError(f"{name}='blurred' needs images (N, C, H, W), got shape {tuple(inputs.shape)}")
            return gaussian_blur(inputs.detach(), max(inputs.shape[-2:]) / 10)
        if baseline == "uniform":
            generator = torch.Generator(device=inputs.device)
            generator.manual_seed(0 if seed is None else seed)
            noise = torch.rand(inputs.shape, generator=generator, device=inputs.device, dtype=inputs.dtype)
            return low + noise * (high - low)
        raise ValueError(f"{name} must be one of {', '.join(NAMES)}, a number or a tensor, got {baseline!r}")
    if not isinstance(baseline, torch.Tensor):
        raise TypeError(f"{name} must be one of {', '.join(NAMES)}, a number or a tensor, "
                        f"got {type(baseline).__name__}")
    if not baseline.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {baseline.dtype}")
    try:
        out = torch.broadcast_to(baseline.detach(), inputs.shape)
    except RuntimeError:
        raise ValueError(f"{name} must have the shape of inputs {tuple(inputs.shape)} or of one input "
                         f"{tuple(inputs.shape[1:])}, got {tuple(baseline.shape)}") from None
    if out.device != inputs.device:
        raise ValueError(f"{name} is on {out.device} but inputs are on {inputs.device}")
    if not torch.isfinite(out).all():
        raise ValueError(f"{name} must be finite, but it contains NaN or infinite values")
    return out.to(inputs.dtype)
