"""Real images that ship with installed packages: scikit-learn's digits, scikit-image's photographs."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .shapes import Dataset

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
DIGIT_SPLIT_SEED = 20240601  # fixes which digits are the held-out test set; never change it


def digits(split: str = "train", size: int = 16) -> Dataset:
    """scikit-learn's 8x8 handwritten digits as ``(N, 1, size, size)`` float images in [0, 1].

    ``split`` is ``"train"`` (two thirds), ``"test"`` (the held-out third, never used in training)
    or ``"all"``; the split is fixed, the same on every machine. ``size`` resamples the 8x8 originals
    bilinearly (16 by default, what the course's digit models expect; 8 keeps them as they are).
    The digits carry no object masks (``masks`` is None).
    """
    from sklearn.datasets import load_digits

    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    raw = load_digits()
    images = torch.tensor(raw.images, dtype=torch.float32)[:, None] / 16.0
    labels = torch.tensor(raw.target, dtype=torch.int64)
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(DIGIT_SPLIT_SEED))
    n_test = len(labels) // 3
    pick = {"train": order[n_test:], "test": order[:n_test], "all": torch.arange(len(labels))}[split]
    return Dataset(images[pick].contiguous(), labels[pick], None, tuple(str(d) for d in range(10)))


def photo(name: str = "chelsea", size: int | None = 224) -> torch.Tensor:
    """A photograph shipped with scikit-image as a ``(3, H, W)`` float tensor in [0, 1].

    ``name`` is one of :data:`PHOTOS`. With ``size`` (224 by default, what ImageNet models expect)
    the photo is centre-cropped to a square and resized to ``size x size``; ``size=None`` keeps it
    as it is. Add a batch dimension with ``photo(...)[None]`` before passing it to a model.
    """
    import skimage.data

    if name not in PHOTOS:
        raise ValueError(f"name must be one of {PHOTOS}, got {name!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 8):
        raise ValueError(f"size must be None or an int >= 8, got {size!r}")
    array = getattr(skimage.data, name)()
    image = torch.tensor(array, dtype=torch.float32)
    image = image[..., None].expand(-1, -1, 3) if image.ndim == 2 else image[..., :3]
    image = image.permute(2, 0, 1) / 255.0
    if size is not None:
        h, w = image.shape[1:]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        image = image[:, top:top + side, left:left + side]
        image = F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)[0].clamp(0, 1)
    return image.contiguous()
