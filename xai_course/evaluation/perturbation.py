"""Pixel perturbation (lab 14): remove the pixels an explanation ranks first and watch the model.

An explanation ranks the pixels of an image (its attributions summed over channels); removing the
``k = round(fraction · H · W)`` first pixels (every channel at one position ``(h, w)``, replaced by a
fill value) and running the model on what is left measures how much the model needed them:

- :func:`rank_pixels`: the order in which pixels go, ``"most"`` salient first, ``"least"`` first or
  ``"random"`` (seeded);
- :func:`fill_values`: what a removed pixel becomes: ``"black"`` (0.0), ``"mean"`` (each image's
  per-channel mean), a number or a tensor;
- :func:`perturb`: one perturbed copy of each image;
- :func:`perturbed_outputs`: the model on every fraction of every image, batched through the
  masked-evaluation engine of the perturbation methods (:func:`xai_course.attribution.masking.evaluate`),
  so ``F`` fractions of ``N`` images cost ``N·F`` forward passes in as few batches as memory allows.
"""
from __future__ import annotations

from numbers import Real
from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..attribution._core import check_call, check_inputs, check_model, make_generator
from ..attribution.masking import evaluate
from .localisation import pixel_map

ORDERS = ("most", "least", "random")
FILLS = ("black", "mean")
Fill = Union[str, float, torch.Tensor]


def check_fraction(fraction, name: str = "fraction") -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, Real) or not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1] (the share of pixels removed), got {fraction!r}")
    return float(fraction)


def check_fractions(fractions) -> torch.Tensor:
    """A non-empty sequence (or 1-D tensor) of fractions in [0, 1], as a float64 tensor (F,)."""
    if isinstance(fractions, torch.Tensor):
        fractions = fractions.detach().cpu().flatten().tolist()
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Sequence) or len(fractions) == 0:
        raise ValueError(f"fractions must be a non-empty sequence of numbers in [0, 1], got {fractions!r}")
    return torch.tensor([check_fraction(f, "fractions[i]") for f in fractions], dtype=torch.float64)


def pixels_removed(fraction: float, height: int, width: int) -> int:
    """``k = round(fraction · H · W)``: how many pixels a fraction removes (Python's round)."""
    return int(round(fraction * height * width))


def _check_attributions(inputs: torch.Tensor, attributions) -> torch.Tensor:
    if inputs.ndim != 4:
        raise ValueError(f"inputs must be images (N, C, H, W), got shape {tuple(inputs.shape)}")
    a = pixel_map(attributions)
    if a.shape[0] != inputs.shape[0] or a.shape[1:] != inputs.shape[2:]:
        raise ValueError(f"attributions must be (N, C, H, W) or (N, 1, H, W) with N, H, W = "
                         f"{inputs.shape[0]}, {inputs.shape[2]}, {inputs.shape[3]} like the inputs, "
                         f"got shape {tuple(attributions.shape)}")
    if not torch.isfinite(a).all():
        raise ValueError("attributions must be finite (no NaN or infinity)")
    return a.to(inputs.device)


def rank_pixels(attributions: torch.Tensor, order: str = "most", seed: Optional[int] = None) -> torch.Tensor:
    """The pixels in the order they are removed: a LongTensor ``(N, H·W)`` of flat indices ``h·W + w``.

    ``attributions`` ``(N, C, H, W)`` or ``(N, 1, H, W)`` are summed over channels (signed). ``order``:
    ``"most"`` (largest attribution first), ``"least"`` (smallest first) or ``"random"`` (a random
    permutation per image, from a generator seeded with ``seed``; the global one if ``seed`` is None).
    Ties keep pixel order (a stable sort), so the ranking does not depend on the machine.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(map(repr, ORDERS))}, got {order!r}")
    a = pixel_map(attributions).flatten(1)
    if order == "random":
        gen = make_generator(seed, "cpu")
        return torch.stack([torch.randperm(a.shape[1], generator=gen) for _ in range(a.shape[0])]).to(a.device)
    return a.argsort(dim=1, descending=(order == "most"), stable=True)


def fill_values(inputs: torch.Tensor, fill: Fill = "black") -> torch.Tensor:
    """What a removed pixel becomes, shaped like ``inputs`` ``(N, C, H, W)``.

    ``"black"``: 0.0 (not each image's minimum, as in Quantus); ``"mean"``: each image's mean per
    channel; a number; or a tensor broadcastable to ``inputs`` (e.g. a blurred copy).
    """
    if isinstance(fill, str):
        if fill == "black":
            return torch.zeros_like(inputs)
        if fill == "mean":
            return inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs)
        raise ValueError(f"fill must be 'black', 'mean', a number or a tensor, got {fill!r}")
    if isinstance(fill, torch.Tensor):
        try:
            out = torch.broadcast_to(fill.to(inputs), inputs.shape)
        except RuntimeError:
            raise ValueError(f"fill must broadcast to the inputs' shape {tuple(inputs.shape)}, got shape "
                             f"{tuple(fill.shape)}") from None
        if not torch.isfinite(out).all():
            raise ValueError("fill must be finite")
        return out
    if isinstance(fill, bool) or not isinstance(fill, Real) or not torch.isfinite(torch.tensor(float(fill))):
        raise ValueError(f"fill must be 'black', 'mean', a finite number or a tensor, got {fill!r}")
    return torch.full_like(inputs, float(fill))


def _removal_ranks(ranking: torch.Tensor, shape) -> torch.Tensor:
    """``position[n, h, w]``: where pixel (h, w) comes in image n's removal order (0 = first)."""
    position = torch.empty_like(ranking)
    position.scatter_(1, ranking, torch.arange(ranking.shape[1], device=ranking.device).expand_as(ranking))
    return position.view(shape[0], 1, shape[2], shape[3])


def perturb(inputs: torch.Tensor, attributions: torch.Tensor, fraction: float, order: str = "most",
            fill: Fill = "black", seed: Optional[int] = None) -> torch.Tensor:
    """The inputs with their first ``k = round(fraction · H · W)`` pixels (in ``order``) replaced by ``fill``.

    A pixel is all channels at one position; exactly k pixels of every image change to the fill
    value (a pixel already equal to it stays equal). See :func:`rank_pixels` and :func:`fill_values`.
    """
    check_inputs(inputs)
    fraction = check_fraction(fraction)
    a = _check_attributions(inputs, attributions)
    k = pixels_removed(fraction, inputs.shape[2], inputs.shape[3])
    position = _removal_ranks(rank_pixels(a.unsqueeze(1), order, seed), inputs.shape)
    return torch.where(position >= k, inputs, fill_values(inputs, fill))


def perturbed_outputs(model: nn.Module, inputs: torch.Tensor, attributions: torch.Tensor, fractions,
                      *, target=None, order: str = "most", fill: Fill = "black", seed: Optional[int] = None,
                      output: str = "probabilities", batch_size: Optional[int] = None) -> torch.Tensor:
    """The model on ``perturb(inputs, attributions, f, order, fill, seed)`` for every f in ``fractions``.

    Returns ``(N, F)`` for ``output="target"`` (the target logit; needs ``target``) or ``(N, F, classes)``
    for ``"logits"`` and ``"probabilities"`` (softmax). Every image is ranked once; the ``N·F``
    perturbed copies are evaluated ``batch_size`` at a time (default: the engine's, about 1 MB of inputs),
    and only one batch of them exists at once. The model is put in eval mode for the call and left
    as it was.
    """
    if output == "target":
        model, inputs, target = check_call(model, inputs, target)
    else:
        check_model(model)
        check_inputs(inputs)
    fractions = check_fractions(fractions)
    a = _check_attributions(inputs, attributions)
    height, width = inputs.shape[2], inputs.shape[3]
    k = torch.tensor([pixels_removed(float(f), height, width) for f in fractions], device=inputs.device)
    position = _removal_ranks(rank_pixels(a.unsqueeze(1), order, seed), inputs.shape)

    def keep(example, row):  # copy (n, s) keeps the pixels after the first k_s in image n's order
        return position[example] >= k[row].view(-1, 1, 1, 1)

    return evaluate(model, inputs, target, fill_values(inputs, fill), keep, len(k), batch_size, output)
