"""XRAI (chapter 6): attributions summed over regions, regions added greedily by gain per area.

Kapishnikov, Bolukbasi, Viégas & Terry (2019), "XRAI: Better Attributions Through Regions". Four steps
(slide 002):

1. attributions a (by default IG from a black and from a white baseline, averaged), summed over the
   channels: one value a_p per pixel p;
2. an over-segmentation: many overlapping candidate regions S_k (Felzenszwalb at several scales,
   each segment dilated a little);
3. start from the empty mask R = ∅;
4. repeatedly add the region with the largest gain per area over the pixels it would add,

       k* = argmax_k  (1 / |S_k \\ R|) Σ_{p ∈ S_k \\ R} a_p ,      R ← R ∪ S_k*,

   and give those new pixels the value of that gain. Regions adding fewer than ``min_pixel_diff`` new
   pixels are dropped; pixels no region covers get the mean attribution over them.

``algorithm="fast"`` ranks the regions once by their density over their whole area (no overlap taken
into account) and adds them in that order. Both follow PAIR's ``saliency`` library, detail for detail,
except that the course sums the attributions over channels where PAIR takes their maximum.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from ._core import Target, check_call, check_inputs, check_int, register
from .integrated_gradients import integrated_gradients

SCALES = (50, 100, 150, 250, 500, 1200)   # PAIR's Felzenszwalb scales, sigma 0.8
PAIR_SIZE = 224                            # the image side PAIR tunes its segmentation for


def xrai_segments(images: torch.Tensor, scales: Sequence[float] = SCALES, sigma: float = 0.8,
                  min_size: Optional[int] = None, dilation: Optional[int] = None) -> list:
    """XRAI's candidate regions: one boolean tensor (K, H, W) per image.

    Felzenszwalb segmentations at each of ``scales`` of the image rescaled to [-1, 1], every segment
    of every scale one region, dilated by a disk of radius ``dilation``. PAIR resizes every image to
    224 x 224, segments with ``min_size=150`` and dilates with radius 5 at the original size; the
    course segments at the image's own size and scales the sizes to it: ``min_size`` = 150 x (area /
    224²) and ``dilation`` = 5 x (side / 224), which are PAIR's values for a 224 x 224 image.
    """
    from skimage.morphology import disk
    from skimage.segmentation import felzenszwalb

    check_inputs(images, "images")
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    h, w = images.shape[-2:]
    ratio = math.sqrt(h * w) / PAIR_SIZE
    min_size = max(1, round(150 * ratio ** 2)) if min_size is None else min_size
    dilation = round(5 * ratio) if dilation is None else dilation
    offsets = np.argwhere(disk(dilation)) if dilation else np.zeros((1, 2), dtype=int)
    out = []
    for image in images.detach().cpu().double().numpy():
        image = image.transpose(1, 2, 0)
        image = 2 * (image - image.min()) / max(image.max() - image.min(), 1e-12) - 1
        masks = [dilated_segments(felzenszwalb(image, scale=scale, sigma=sigma, min_size=min_size), offsets)
                 for scale in scales]
        out.append(torch.from_numpy(np.concatenate(masks)).to(images.device))
    return out


def dilated_segments(labels: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """One mask (K, H, W) per label, dilated: pixel p joins segment k if a pixel p + o has label k for
    some offset o of the (symmetric) footprint; ``offsets`` (F, 2) index a (2r+1)² window centred at r."""
    h, w = labels.shape
    r = int(offsets.max()) // 2
    padded = np.pad(labels, r, constant_values=-1)          # -1: outside the image
    masks = np.zeros((labels.max() + 1, h * w), dtype=bool)
    pixels = np.arange(h * w)
    for dy, dx in offsets:
        neighbour = padded[dy:dy + h, dx:dx + w].ravel()
        inside = neighbour >= 0
        masks[neighbour[inside], pixels[inside]] = True
    return masks.reshape(-1, h, w)


def select_regions(attribution: torch.Tensor, masks: torch.Tensor, algorithm: str = "full",
                   area_threshold: float = 1.0, min_pixel_diff: int = 50) -> torch.Tensor:
    """Step 4 for one image: attribution (H, W), candidate regions masks (K, H, W) -> the XRAI map (H, W)."""
    a = attribution.detach().cpu().double().numpy().ravel()
    regions = masks.detach().cpu().numpy().reshape(len(masks), -1)
    M = regions.astype(np.float64)
    out = np.full_like(a, -np.inf)
    free = np.ones(a.shape, dtype=bool)                      # pixels not in the mask R yet
    if algorithm == "fast":
        area = M.sum(1)
        density = np.where(area > 0, M @ a / np.maximum(area, 1), -np.inf)
        for k in np.argsort(-density, kind="stable"):        # by density, ties in the given order
            new = regions[k] & free
            if np.count_nonzero(new) < min_pixel_diff:
                continue
            out[new] = a[new].mean()
            free &= ~regions[k]
    else:
        alive = np.ones(len(regions), dtype=bool)
        counts, sums = regions.sum(1), M @ a                 # |S_k \ R| and the attribution in it
        while (~free).mean() <= area_threshold:               # PAIR's loop condition
            alive &= counts >= min_pixel_diff
            if not alive.any():
                break
            gain = np.where(alive, sums / np.maximum(counts, 1), -np.inf)
            k = int(gain.argmax())                           # the first of equal gains, as PAIR
            new = np.flatnonzero(regions[k] & free)
            out[new] = a[new].mean()
            free[new] = False                                # R <- R + S_k: update every region's rest
            counts -= regions[:, new].sum(1)
            sums -= M[:, new] @ a[new]
            alive[k] = False
    rest = out == -np.inf
    if rest.any():
        out[rest] = a[rest].mean()                           # what no region covered, as one region
    return torch.from_numpy(out.reshape(attribution.shape))


def check_regions(segments, inputs: torch.Tensor) -> list:
    n, h, w = inputs.shape[0], inputs.shape[2], inputs.shape[3]
    if isinstance(segments, torch.Tensor) and segments.ndim == 3 and n == 1:
        segments = [segments]
    if isinstance(segments, (str, bytes)) or not isinstance(segments, (Sequence, torch.Tensor)) \
            or len(segments) != n:
        raise ValueError(f"segments must be a sequence of {n} boolean tensors (K, {h}, {w}), one per image")
    for i, s in enumerate(segments):
        if not isinstance(s, torch.Tensor) or s.dtype != torch.bool or s.ndim != 3 or s.shape[1:] != (h, w):
            got = f"{s.dtype} {tuple(s.shape)}" if isinstance(s, torch.Tensor) else type(s).__name__
            raise ValueError(f"segments[{i}] must be a boolean tensor (K, {h}, {w}), got {got}")
    return [s.cpu() for s in segments]


@register("xrai")
def xrai(model: nn.Module, inputs: torch.Tensor, target: Target, attributions: Optional[torch.Tensor] = None,
         segments=None, algorithm: str = "full", area_threshold: float = 1.0, min_pixel_diff: int = 50,
         steps: int = 50, batch_size: Optional[int] = None) -> torch.Tensor:
    """XRAI: each pixel gets the gain per area of the region that added it (chapter 6): (N, 1, H, W).

    ``attributions`` (N, C, H, W) or (N, 1, H, W), summed over channels (default: the mean of IG with
    ``steps`` Gauss-Legendre points from the black (0) and the white (1) image, in passes of at most
    ``batch_size`` points). ``segments``: a sequence of N boolean tensors (K, H, W) of candidate regions
    (default :func:`xrai_segments`). ``algorithm`` ``"full"`` (greedy, overlaps accounted for, until the
    mask covers more than ``area_threshold`` of the image) or ``"fast"`` (one ranking by density; ignores
    ``area_threshold``). Regions adding fewer than ``min_pixel_diff`` new pixels are dropped.
    """
    model, inputs, target = check_call(model, inputs, target)
    if inputs.ndim != 4:
        raise ValueError(f"inputs must be images (N, C, H, W), got shape {tuple(inputs.shape)}")
    if algorithm not in ("full", "fast"):
        raise ValueError(f"algorithm must be 'full' or 'fast', got {algorithm!r}")
    if not isinstance(area_threshold, (int, float)) or isinstance(area_threshold, bool) \
            or not 0 <= area_threshold <= 1:
        raise ValueError(f"area_threshold must be a number in [0, 1], got {area_threshold!r}")
    min_pixel_diff = check_int(min_pixel_diff, "min_pixel_diff")
    n, _, h, w = inputs.shape
    if attributions is None:
        attributions = sum(integrated_gradients(model, inputs, target, baseline=value, steps=steps,
                                                batch_size=batch_size) for value in (0.0, 1.0)) / 2
    elif not isinstance(attributions, torch.Tensor) or attributions.ndim != 4 \
            or attributions.shape[0] != n or attributions.shape[2:] != (h, w):
        got = tuple(attributions.shape) if isinstance(attributions, torch.Tensor) else type(attributions).__name__
        raise ValueError(f"attributions must be a tensor ({n}, C, {h}, {w}) or ({n}, 1, {h}, {w}), got {got}")
    check_inputs(attributions, "attributions")
    pixel = attributions.detach().sum(1).cpu()
    regions = xrai_segments(inputs) if segments is None else check_regions(segments, inputs)
    maps = [select_regions(pixel[i], regions[i].cpu(), algorithm, area_threshold, min_pixel_diff)
            for i in range(n)]
    return torch.stack(maps)[:, None].to(inputs.device, inputs.dtype)
