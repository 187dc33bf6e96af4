"""Occlusion (chapter 12): cover a window of the input, watch the target score drop.

Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks". A window W_k slides
over the input with a stride; each position is replaced by the baseline x' and the model is rerun:

    Δ_k = f(x) - f(x with W_k := x'),      a_i = (1 / |{k : i ∈ W_k}|) Σ_{k : i ∈ W_k} Δ_k,

each element gets the mean score drop of the windows covering it. The positions follow Captum's
``Occlusion`` exactly: per dimension of size D with window w and stride s there are ⌈(D - w)/s⌉ + 1
starts 0, s, 2s, ..., and the last window is cut at the edge.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import nn

from ._core import Target, check_call, register
from .baselines import Baseline
from .masking import check_batch_size, evaluate, make_fill

Shape = Union[int, Sequence[int]]


def window_shape(value, inputs: torch.Tensor, name: str, image_default) -> tuple:
    """``window``/``stride`` as one int per non-batch dimension (an int means Captum's usual shape)."""
    dims = tuple(inputs.shape[1:])
    if isinstance(value, int) and not isinstance(value, bool):
        value = image_default(value) if inputs.ndim == 4 else (value,) * len(dims)
    if (not isinstance(value, (tuple, list)) or len(value) != len(dims)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise ValueError(f"{name} must be a positive int or a tuple of {len(dims)} positive ints (one per "
                         f"dimension of an input {dims}), got {value!r}")
    return tuple(value)


def window_starts(dims, window, stride):
    """Per dimension, the start of every window: 0, s, ..., up to ⌈(D - w)/s⌉ s (Captum's positions)."""
    for d, w, s in zip(dims, window, stride):
        if w > d:
            raise ValueError(f"window {tuple(window)} does not fit in an input of shape {tuple(dims)}")
        if s > w and w < d:
            raise ValueError(f"stride {tuple(stride)} must not exceed window {tuple(window)} in a dimension "
                             f"the window does not cover: elements would be skipped")
    return [torch.arange(math.ceil((d - w) / s) + 1) * s for d, w, s in zip(dims, window, stride)]


def interval_masks(starts, dims, window, device):
    """Per dimension, a boolean matrix (positions, D): which elements each window position covers."""
    return [(torch.arange(d, device=device) >= b.to(device)[:, None])
            & (torch.arange(d, device=device) < b.to(device)[:, None] + w) for b, d, w in zip(starts, dims, window)]


@register("occlusion")
def occlusion(model: nn.Module, inputs: torch.Tensor, target: Target, window: Shape = 8, stride: Shape = 1,
              baseline: Baseline = 0.0, batch_size: Optional[int] = None) -> torch.Tensor:
    """Occlusion: each element's mean score drop f(x) - f(occluded) over the windows covering it.

    ``window``: an int w (images: a w×w patch through all channels, Captum's ``(C, w, w)``; flat
    inputs ``(w,)``) or one int per non-batch dimension (Captum's ``sliding_window_shapes``).
    ``stride``: an int s (images: Captum's ``(1, s, s)``; flat ``(s,)``) or a tuple (``strides``).
    ``baseline``: what a covered element becomes (a number, a name of ``make_baseline`` or a tensor
    like ``inputs``). ``batch_size``: at most this many occluded inputs per forward pass.
    Cost: N × (1 + Π_d (⌈(D_d - w_d)/s_d⌉ + 1)) model evaluations.
    """
    model, inputs, target = check_call(model, inputs, target)
    check_batch_size(batch_size)
    dims = tuple(inputs.shape[1:])
    window = window_shape(window, inputs, "window", lambda w: (dims[0], w, w))
    stride = window_shape(stride, inputs, "stride", lambda s: (1, s, s))
    starts = window_starts(dims, window, stride)
    covers = interval_masks(starts, dims, window, inputs.device)
    counts = [len(b) for b in starts]
    positions = math.prod(counts)
    fill = make_fill(inputs, baseline)

    # a dimension every window covers whole (the channels of an image) adds nothing to the masks:
    # they stay (B, 1, H, W) and broadcast over it
    whole = [n == 1 and bool(cover.all()) for n, cover in zip(counts, covers)]

    def keep(example, row):  # row = 0: the input itself; row k ≥ 1: window position k - 1 covered
        index = torch.unravel_index((row - 1).clamp(min=0), counts)
        covered = torch.ones((len(row),) + (1,) * len(dims), dtype=torch.bool, device=inputs.device)
        for d, i in enumerate(index):
            if not whole[d]:
                shape = [len(row)] + [1] * len(dims)
                shape[d + 1] = dims[d]
                covered = covered & covers[d][i].view(shape)
        return ~covered | (row == 0).view(-1, *[1] * len(dims))

    box = None
    if inputs.ndim == 4:     # images: a copy differs from its input only in its window's box
        height, width = window[1:]
        tops, lefts = (b.to(inputs.device) for b in starts[1:])

        def corner(example, row):   # the window's corner, cut windows moved back inside the image
            index = torch.unravel_index((row - 1).clamp(min=0), counts)
            return tops[index[1]].clamp(max=dims[1] - height), lefts[index[2]].clamp(max=dims[2] - width)
        box = (height, width, corner)

    scores = evaluate(model, inputs, target, fill, keep, 1 + positions, batch_size, box=box).double()
    drops = (scores[:, :1] - scores[:, 1:]).view(-1, *counts)   # Δ_k per window position
    # Σ_k Δ_k [i ∈ W_k] and the number of windows covering i, one dimension at a time (W_k is a box):
    # each step contracts the first position axis with that dimension's cover matrix (positions, D_d)
    total, number = drops, torch.ones(counts, dtype=torch.float64, device=inputs.device)
    for cover in covers:
        total = torch.tensordot(total, cover.double(), dims=([1], [0]))
        number = torch.tensordot(number, cover.double(), dims=([0], [0]))
    return (total / number).to(inputs.dtype)
