"""Does an explanation point at the object? Localisation measures against ground-truth masks.

``masks`` are booleans ``(N, 1, H, W)`` (or ``(N, H, W)``), as ``data.shapes`` returns them; attributions
``(N, C, H, W)`` are summed over channels first (:func:`pixel_map`), signed, as everywhere in the course.
"""
from __future__ import annotations

import torch


def pixel_map(attributions: torch.Tensor, name: str = "attributions") -> torch.Tensor:
    """One value per pixel: ``(N, C, H, W)`` or ``(N, 1, H, W)`` summed over channels, ``(N, H, W)``."""
    if not isinstance(attributions, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(attributions).__name__}")
    if attributions.ndim != 4:
        raise ValueError(f"{name} must be (N, C, H, W) or (N, 1, H, W), got shape {tuple(attributions.shape)}")
    if not attributions.is_floating_point():
        attributions = attributions.float()
    return attributions.sum(1)


def _masks(masks, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"masks must be a torch.Tensor of booleans, got {type(masks).__name__}")
    given = tuple(masks.shape)
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.shape != like.shape:
        raise ValueError(f"masks must be (N, 1, H, W) = {(like.shape[0], 1, *like.shape[1:])} to match the "
                         f"attributions, got shape {given}")
    return masks.to(device=like.device, dtype=torch.bool)


def pointing_game(attributions: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Bool ``(N,)``: does the pixel with the largest (channel-summed) attribution lie in the mask?

    Where several pixels share the largest value, a hit is any of them in the mask (Quantus' rule; a
    constant map therefore hits any non-empty mask), so the answer does not depend on pixel order.
    """
    a = pixel_map(attributions)
    m = _masks(masks, a)
    top = a == a.flatten(1).amax(1)[:, None, None]
    return (m & top).flatten(1).any(1)


def relevance_mass(attributions: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``(N,)``: the share of the positive attribution that lies inside the mask (Arras et al., 2022).

    An image with no positive attribution gets 0.
    """
    a = pixel_map(attributions).clamp(min=0).flatten(1)
    m = _masks(masks, pixel_map(attributions)).flatten(1)
    total = a.sum(1)
    inside = (a * m).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=torch.finfo(a.dtype).tiny), torch.zeros_like(total))


def iou_top_k(attributions: torch.Tensor, masks: torch.Tensor, fraction: float = None) -> torch.Tensor:
    """``(N,)``: intersection over union of the top-k pixels (by attribution) with the mask.

    ``fraction`` of the pixels form the region (k = round(fraction·H·W)); ``None`` takes k = the mask's
    own size per image, so a perfect map scores 1.
    """
    from .perturbation import check_fraction, pixels_removed   # (perturbation imports this module)

    a = pixel_map(attributions).flatten(1)
    m = _masks(masks, pixel_map(attributions)).flatten(1)
    n, hw = a.shape
    if fraction is None:
        k = m.sum(1)
    else:
        k = torch.full((n,), pixels_removed(check_fraction(fraction), 1, hw), device=a.device)
    rank = a.argsort(dim=1, descending=True, stable=True).argsort(dim=1, stable=True)  # 0 = most attributed
    region = rank < k[:, None]
    union = (region | m).sum(1)
    return torch.where(union > 0, (region & m).sum(1) / union.clamp(min=1), torch.ones(n, device=a.device))
