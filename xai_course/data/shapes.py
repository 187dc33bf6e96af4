"""Procedurally drawn shapes with a ground-truth object mask per image.

Every image is 64x64 RGB in [0, 1]: one coloured shape (the object, whose class is the label) drawn
over a textured, cluttered background. Because the object mask is known exactly, the course can
measure whether an explanation points at the object: something ImageNet experiments cannot do.

The whole batch is drawn with vectorised torch operations from one ``torch.Generator``, so the same
``seed`` always gives the same images, and 5,000 images take about a second.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch

CLASSES = ("circle", "square", "triangle", "cross", "star")


class Dataset(NamedTuple):
    """Images with labels and, where the data has them, ground-truth masks.

    ``images``: float32 ``(N, C, H, W)`` in [0, 1]; ``labels``: int64 ``(N,)``; ``masks``: bool
    ``(N, 1, H, W)``, True on the object (None for data without masks); ``classes``: the class names;
    ``cue``: bool ``(N,)``, whether the image carries the spurious mark (spurious variant only);
    ``cue_masks``: bool ``(N, 1, H, W)``, where the mark is drawn (spurious variant only).
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: Optional[torch.Tensor]
    classes: tuple
    cue: Optional[torch.Tensor] = None
    cue_masks: Optional[torch.Tensor] = None

    def __len__(self) -> int:  # the number of images, not the number of fields
        return self.images.shape[0]


def _check_n_seed(n, seed):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def _uniform(gen, n, low, high):
    return low + (high - low) * torch.rand(n, generator=gen)


def _smooth_noise(gen, n, size, cells):
    """Value noise: random values on a coarse grid, bilinearly upsampled (N, 1, size, size)."""
    coarse = torch.rand(n, 1, cells, cells, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def _object_masks(labels, u, v, radius):
    """Boolean masks (N, H, W) of each class's shape in object coordinates (u, v), scaled by radius."""
    def triangle(u, v, r):  # inside the three half-planes at distance r / 2 from the centre
        angles = [math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
        return torch.stack([u * math.cos(a) + v * math.sin(a) for a in angles]).amax(0) <= 0.5 * r

    def star(u, v, r):  # five points: the radius oscillates between 0.45 r and r with the angle
        return u**2 + v**2 <= (r * (0.45 + 0.55 * torch.cos(5 * torch.atan2(v, u)).clamp(min=0) ** 2)) ** 2

    shapes = {
        "circle": lambda u, v, r: u**2 + v**2 <= r**2,
        "square": lambda u, v, r: torch.maximum(u.abs(), v.abs()) <= 0.8 * r,
        "triangle": triangle,
        "cross": lambda u, v, r: (torch.minimum(u.abs(), v.abs()) <= 0.3 * r) & (torch.maximum(u.abs(), v.abs()) <= r),
        "star": star,
    }
    masks = torch.zeros_like(u, dtype=torch.bool)
    for k, name in enumerate(CLASSES):
        sel = labels == k
        if sel.any():
            masks[sel] = shapes[name](u[sel], v[sel], radius[sel][:, None, None])
    return masks


def _random_colours(gen, n, saturation, value):
    """Random hues at the given saturation/value ranges, as RGB (N, 3)."""
    h = torch.rand(n, generator=gen)
    s = _uniform(gen, n, *saturation)
    v = _uniform(gen, n, *value)
    k = torch.stack([(5 + 6 * h) % 6, (3 + 6 * h) % 6, (1 + 6 * h) % 6], dim=1)
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def shapes(n: int = 1000, seed: int = 0, size: int = 64, classes: Sequence[str] = CLASSES,
           clutter: int = 4, spurious: Optional[float] = None, cue_class: int = 0) -> Dataset:
    """Draw ``n`` images of coloured shapes on textured, cluttered backgrounds.

    Parameters
    ----------
    n, seed: how many images, and the seed that fixes every random choice.
    size: image side in pixels (64 by default; the course models expect 64).
    classes: which shape classes to draw, a subset of ``CLASSES`` (labels index into this tuple).
    clutter: how many distractor strokes and blobs to draw on each background.
    spurious: ``None`` for the plain data. Otherwise the probability that an image of class
        ``cue_class`` carries the spurious mark (a small bright square in the top-left corner);
        images of other classes carry it with probability ``1 - spurious``. ``spurious=0.95`` makes
        the mark a strong but misleading cue in training; ``spurious=0.5`` makes it uninformative
        (use that at test time to see whether a model learned the shape or the mark).
    cue_class: the class that the mark correlates with.

    Returns a :class:`Dataset` with bool ``masks`` of the object; the spurious variant also fills
    ``cue`` and ``cue_masks``.
    """
    _check_n_seed(n, seed)
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an int >= 16, got {size!r}")
    classes = tuple(classes)
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct names from {CLASSES}, got {classes!r}")
    if isinstance(clutter, bool) or not isinstance(clutter, int) or clutter < 0:
        raise ValueError(f"clutter must be a non-negative int, got {clutter!r}")
    if spurious is not None and not (0.0 <= float(spurious) <= 1.0):
        raise ValueError(f"spurious must be None or a probability in [0, 1], got {spurious!r}")
    if not (0 <= cue_class < len(classes)):
        raise ValueError(f"cue_class must index classes (0..{len(classes) - 1}), got {cue_class!r}")

    gen = torch.Generator().manual_seed(seed)
    # balanced labels in random order
    labels = torch.arange(n) % len(classes)
    labels = labels[torch.randperm(n, generator=gen)]
    ids = torch.tensor([CLASSES.index(c) for c in classes])[labels]

    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # pixel centres in (0, 1)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")

    # background: two colours mixed by smooth noise, plus oriented stripes
    c1 = _random_colours(gen, n, (0.1, 0.5), (0.3, 0.8))
    c2 = _random_colours(gen, n, (0.1, 0.5), (0.3, 0.8))
    mix = _smooth_noise(gen, n, size, 6)
    images = c1[:, :, None, None] * mix + c2[:, :, None, None] * (1 - mix)
    angle = _uniform(gen, n, 0, math.pi)[:, None, None]
    freq = _uniform(gen, n, 8, 20)[:, None, None]
    phase = _uniform(gen, n, 0, 2 * math.pi)[:, None, None]
    stripes = torch.sin(freq * (xx * torch.cos(angle) + yy * torch.sin(angle)) * math.pi + phase)
    images = images + 0.06 * stripes[:, None] + 0.05 * (torch.rand(n, 1, size, size, generator=gen) - 0.5)

    # clutter: line strokes and small blobs in random colours
    for _ in range(clutter):
        colour = _random_colours(gen, n, (0.2, 0.9), (0.2, 1.0))[:, :, None, None]
        x0, y0, x1, y1 = (torch.rand(n, generator=gen)[:, None, None] for _ in range(4))
        stroke = torch.rand(n, generator=gen)[:, None, None] < 0.6
        dx, dy = x1 - x0, y1 - y0
        t = (((xx - x0) * dx + (yy - y0) * dy) / (dx**2 + dy**2 + 1e-6)).clamp(0, 1)
        dist2_line = (xx - x0 - t * dx) ** 2 + (yy - y0 - t * dy) ** 2
        dist2_blob = (xx - x0) ** 2 + 2.0 * (yy - y0) ** 2
        draw = torch.where(stroke, dist2_line < (1.2 / size + 0.01) ** 2, dist2_blob < 0.05**2)
        images = torch.where(draw[:, None], colour.expand(-1, -1, size, size), images)

    # the object: a random colour, position, scale and rotation
    radius = _uniform(gen, n, 0.17, 0.28)
    cx = _uniform(gen, n, 0.3, 0.7)[:, None, None]
    cy = _uniform(gen, n, 0.3, 0.7)[:, None, None]
    theta = _uniform(gen, n, 0, 2 * math.pi)[:, None, None]
    u = (xx - cx) * torch.cos(theta) + (yy - cy) * torch.sin(theta)
    v = -(xx - cx) * torch.sin(theta) + (yy - cy) * torch.cos(theta)
    masks = _object_masks(ids, u, v, radius)[:, None]
    colour = _random_colours(gen, n, (0.6, 1.0), (0.75, 1.0))
    shade = 0.85 + 0.15 * _smooth_noise(gen, n, size, 3)
    obj = colour[:, :, None, None] * shade
    images = torch.where(masks, obj, images)

    cue = cue_masks = None
    if spurious is not None:
        p = torch.where(labels == cue_class, float(spurious), 1.0 - float(spurious))
        cue = torch.rand(n, generator=gen) < p
        side = max(2, size // 16)
        cue_masks = torch.zeros(n, 1, size, size, dtype=torch.bool)
        cue_masks[:, :, 2:2 + side, 2:2 + side] = cue[:, None, None, None]
        images = torch.where(cue_masks, torch.ones(()), images)
        masks = masks & ~cue_masks

    return Dataset(images.clamp(0, 1).contiguous(), labels, masks, classes, cue, cue_masks)
