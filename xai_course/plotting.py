"""One look for every figure in the book.

- signed attributions: a diverging map centred on zero (red raises the class score, blue lowers it),
  symmetric limits at a high percentile of |a| so one extreme pixel does not wash the map out;
- magnitudes (absolute values): a sequential map from zero;
- overlays: the attribution over a grey version of the image;
- grids: one row per example, one column per method, labelled.

Attributions of shape ``(C, H, W)`` are reduced to one ``(H, W)`` map by summing over channels (signed)
or summing absolute values (magnitudes).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

DIVERGING = "RdBu_r"
SEQUENTIAL = "inferno"
PERCENTILE = 99.5

# The size rule: the book's text column is about 7 inches wide at 100 % zoom. Every figure is made by
# :func:`subplots` (or :func:`attribution_grid`, which uses it): at most PAGE_WIDTH inches wide, at most
# MAX_COLUMNS panels a row, fonts at least FONT_SIZE points, one dpi for every chapter.
PAGE_WIDTH = 7.0
MAX_COLUMNS = 6
FONT_SIZE = 9
DPI = 110
STYLE = {
    "figure.dpi": DPI, "savefig.dpi": DPI,
    "font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE + 1, "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE - 1, "ytick.labelsize": FONT_SIZE - 1, "legend.fontsize": FONT_SIZE - 1,
    "figure.titlesize": FONT_SIZE + 2, "figure.constrained_layout.use": True,
}


def subplots(nrows: int = 1, ncols: int = 1, height: Optional[float] = None, width: float = 1.0, **kwargs):
    """``plt.subplots`` under the course's size rule: ``(fig, axes)``.

    ``width`` is the share of the page width (1.0 = the full 7-inch column); ``height`` is in inches
    (default: square panels, capped so a figure is never taller than 9 inches). More than
    ``MAX_COLUMNS`` columns is refused: split the figure or transpose it. Fonts and dpi come from
    :data:`STYLE`, so every chapter looks alike.
    """
    if ncols > MAX_COLUMNS:
        raise ValueError(f"ncols={ncols}: at most {MAX_COLUMNS} panels fit a row at page width; "
                         "split the figure into rows or into two figures")
    if not 0 < width <= 1:
        raise ValueError(f"width is a share of the page width in (0, 1], got {width}")
    if "figsize" in kwargs:
        raise TypeError("subplots sets the figure size by the size rule: give width (a share of the "
                        "page width) and height (inches) instead of figsize")
    fig_width = PAGE_WIDTH * width
    if height is None:
        height = min(9.0, fig_width / ncols * nrows * 1.05)
    with plt.rc_context(STYLE):
        return plt.subplots(nrows, ncols, figsize=(fig_width, height), **kwargs)


def use_style():
    """Apply the course's fonts and dpi to every later matplotlib figure (the setup cell calls it)."""
    plt.rcParams.update(STYLE)


def _array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim not in (2, 3):
        raise ValueError(f"expected one image or map of shape (C, H, W) or (H, W), got shape {x.shape}")
    return x


def to_map(attribution, signed: Optional[bool] = None) -> tuple[np.ndarray, bool]:
    """Reduce an attribution to an ``(H, W)`` map; ``signed=None`` decides from the values.

    Returns ``(map, signed)``.
    """
    a = _array(attribution)
    if signed is None:
        signed = bool((a < 0).any())
    if a.ndim == 3:
        a = a.sum(0) if signed else np.abs(a).sum(0)
    return (a if signed else np.abs(a)), signed


def limits(a: np.ndarray, signed: bool, percentile: float = PERCENTILE) -> tuple[float, float]:
    """Colour limits: symmetric around zero for signed maps, from zero for magnitudes."""
    top = float(np.percentile(np.abs(a), percentile)) or float(np.abs(a).max()) or 1.0
    return (-top, top) if signed else (0.0, top)


def show_image(ax, image, title: Optional[str] = None):
    """Show an image tensor ``(C, H, W)`` in [0, 1] (grey for one channel)."""
    img = _array(image)
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
    ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    _tidy(ax, title)
    return ax


def show_attribution(ax, attribution, signed: Optional[bool] = None, title: Optional[str] = None,
                     colorbar: bool = False, percentile: float = PERCENTILE):
    """Show an attribution as a heatmap in the course's look; returns the image artist."""
    a, signed = to_map(attribution, signed)
    vmin, vmax = limits(a, signed, percentile)
    artist = ax.imshow(a, cmap=DIVERGING if signed else SEQUENTIAL, vmin=vmin, vmax=vmax)
    if colorbar:
        ax.figure.colorbar(artist, ax=ax, fraction=0.046, pad=0.04)
    _tidy(ax, title)
    return artist


def overlay(ax, image, attribution, signed: Optional[bool] = None, title: Optional[str] = None,
            alpha: float = 0.6, percentile: float = PERCENTILE):
    """The attribution drawn over a grey version of the image."""
    img = _array(image)
    grey = img.mean(0) if img.ndim == 3 else img
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
    a, signed = to_map(attribution, signed)
    vmin, vmax = limits(a, signed, percentile)
    artist = ax.imshow(a, cmap=DIVERGING if signed else SEQUENTIAL, vmin=vmin, vmax=vmax, alpha=alpha)
    _tidy(ax, title)
    return artist


def attribution_grid(images, attributions: Mapping[str, torch.Tensor], row_titles: Optional[Sequence[str]] = None,
                     signed: Optional[bool] = None, overlay_on_image: bool = False,
                     size: Optional[float] = None):
    """A labelled grid: one row per example, the image first, then one column per method.

    ``attributions`` maps a column title to a batch of attributions with the batch size of ``images``.
    ``size`` is a panel's side in inches, capped by the page width (default: the page width shared out).
    Returns the matplotlib figure.
    """
    images = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    n = images.shape[0]
    for name, a in attributions.items():
        if a.shape[0] != n:
            raise ValueError(f"attributions[{name!r}] has {a.shape[0]} examples, images has {n}")
    cols = 1 + len(attributions)
    width = 1.0 if size is None else min(1.0, size * cols / PAGE_WIDTH)
    fig, axes = subplots(n, cols, width=width, squeeze=False)
    for i in range(n):
        show_image(axes[i, 0], images[i], "image" if i == 0 else None)
        if row_titles is not None:
            axes[i, 0].set_ylabel(row_titles[i])
        for j, (name, a) in enumerate(attributions.items(), start=1):
            title = name if i == 0 else None
            if overlay_on_image:
                overlay(axes[i, j], images[i], a[i], signed, title)
            else:
                show_attribution(axes[i, j], a[i], signed, title)
    return fig


def _tidy(ax, title):
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
