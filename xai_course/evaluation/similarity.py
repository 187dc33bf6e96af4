"""How alike are two explanations? Correlations and structural similarity of maps, image by image.

:func:`pearson` and :func:`spearman` compare maps of any shape ``(N, ...)`` as they are (flattened).
:func:`ssim` and :func:`hog_similarity` compare images: maps ``(N, C, H, W)`` are summed over channels
first (:func:`~xai_course.evaluation.localisation.pixel_map`). :func:`map_similarities` gives the four
measures of Adebayo et al. (2018) for the sanity checks of lab 16 at once.
"""
from __future__ import annotations

import numpy as np
import torch


def _flat(a: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(a, torch.Tensor) or a.ndim < 2:
        raise ValueError(f"{name} must be a batch of maps, a tensor (N, ...)")
    return a.detach().flatten(1).double()


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N,)``: Pearson correlation of ``a[n]`` and ``b[n]`` (flattened); 0 where either is constant."""
    x, y = _flat(a, "a"), _flat(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    x, y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    norm = x.norm(dim=1) * y.norm(dim=1)
    return torch.where(norm > 0, (x * y).sum(1) / norm.clamp(min=1e-300), torch.zeros_like(norm)).float()


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 along dim 1, ties given their average rank (as scipy.stats.rankdata), batched:
    a value's tied run in its sorted row spans [first, last], and its rank is (first + last) / 2, so the
    order within a run does not matter. On the CPU NumPy sorts (its vectorised argsort: 0.2 ms for 8
    maps of 64x64 here, against torch's 1.5 ms)."""
    if x.device.type == "cpu":
        order = torch.from_numpy(np.argsort(x.numpy(), axis=1))
        sorted_x = x.gather(1, order)
    else:
        sorted_x, order = x.sort(dim=1)
    n = x.shape[1]
    index = torch.arange(n, device=x.device).expand_as(order)
    starts = torch.ones_like(order, dtype=torch.bool)
    starts[:, 1:] = sorted_x[:, 1:] != sorted_x[:, :-1]   # a new run of equal values begins
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, index, 0).cummax(1).values
    last = torch.where(ends, index, n - 1).flip(1).cummin(1).values.flip(1)
    return torch.empty_like(x).scatter_(1, order, (first + last).to(x.dtype) / 2)


def spearman(a: torch.Tensor, b: torch.Tensor, absolute: bool = False) -> torch.Tensor:
    """``(N,)``: Spearman rank correlation of ``a[n]`` and ``b[n]`` (Pearson of the ranks, ties averaged).

    ``absolute=True`` ranks ``|a|`` and ``|b|`` (Adebayo et al.'s "rank correlation (abs)"): a map and
    its negation then correlate perfectly. For channel-summed maps pass ``pixel_map(a)``.
    """
    x, y = _flat(a, "a"), _flat(b, "b")
    if absolute:
        x, y = x.abs(), y.abs()
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return pearson(_ranks(x), _ranks(y))


def _images(a: torch.Tensor, b: torch.Tensor) -> tuple:
    from .localisation import pixel_map

    x, y = pixel_map(a, "a").double(), pixel_map(b, "b").double()
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return x, y


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Each image's map (N, H, W) rescaled to [0, 1] by its own minimum and maximum (a constant map
    becomes 0), as Adebayo et al.'s code does before SSIM and HOG."""
    low = maps.flatten(1).min(1).values[:, None, None]
    span = maps.flatten(1).max(1).values[:, None, None] - low
    return torch.where(span > 0, (maps - low) / span.clamp(min=1e-300), torch.zeros_like(maps))


def _gaussian_window(sigma: float, truncate: float = 3.5) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)  # as scipy.ndimage.gaussian_filter
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, absolute: bool = True, normalise: bool = True,
         data_range: float = None, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """``(N,)``: structural similarity (Wang et al., 2004) of the maps ``a[n]`` and ``b[n]``.

    SSIM = mean over the window positions of
    ``(2 mu_a mu_b + C1)(2 cov_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2))`` with local
    statistics under a Gaussian window (sigma 1.5, 11x11), ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2`` and
    ``L`` the data range; only positions whose window lies inside the image count. This is
    ``skimage.metrics.structural_similarity(x, y, data_range=L, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``.

    Maps ``(N, C, H, W)`` are summed over channels; ``absolute`` takes ``|map|`` (default, as Adebayo
    et al. compare the magnitude); ``normalise`` rescales each map to [0, 1] (:func:`normalise_maps`,
    then ``L = 1``). Without normalising, ``data_range`` ``None`` takes each pair's joint
    ``max - min`` (as Quantus does).
    """
    x, y = _images(a, b)
    if absolute:
        x, y = x.abs(), y.abs()
    if normalise:
        x, y = normalise_maps(x), normalise_maps(y)
    if data_range is None:
        both = torch.cat([x.flatten(1), y.flatten(1)], 1)
        data_range = 1.0 if normalise else (both.max(1).values - both.min(1).values)[:, None, None]
    elif not float(data_range) > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    w = _gaussian_window(float(sigma)).to(x.device)
    if x.shape[-1] < len(w) or x.shape[-2] < len(w):
        raise ValueError(f"maps must be at least {len(w)}x{len(w)} pixels for the Gaussian window, "
                         f"got {tuple(x.shape[-2:])}")

    def mean(t):  # Gaussian local means, where the window fits the image
        t = torch.nn.functional.conv2d(t[:, None], w.view(1, 1, -1, 1))
        return torch.nn.functional.conv2d(t, w.view(1, 1, 1, -1))[:, 0]

    mx, my = mean(x), mean(y)
    vx, vy = mean(x * x) - mx * mx, mean(y * y) - my * my
    cxy = mean(x * y) - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)
         / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return s.flatten(1).mean(1).float()


def hog_similarity(a: torch.Tensor, b: torch.Tensor, absolute: bool = True, **hog_options) -> torch.Tensor:
    """``(N,)``: Pearson correlation of the HOG features (Dalal and Triggs, 2005) of ``a[n]`` and ``b[n]``.

    As Adebayo et al. (2018): each map summed over channels, ``|.|`` if ``absolute``, rescaled to [0, 1]
    (:func:`normalise_maps`), described by ``skimage.feature.hog`` (its defaults: 9 orientations, 8x8
    cells, 3x3 blocks, L2-Hys; ``hog_options`` override them), and the two descriptors correlated.
    """
    from skimage.feature import hog

    x, y = _images(a, b)
    if absolute:
        x, y = x.abs(), y.abs()
    x, y = normalise_maps(x).cpu().numpy(), normalise_maps(y).cpu().numpy()
    features = [torch.from_numpy(hog(m, **hog_options)) for m in (*x, *y)]
    features = torch.stack(features)
    return pearson(features[:len(x)], features[len(x):])


MEASURES = ("spearman_abs", "spearman", "ssim", "hog")


def map_similarities(a: torch.Tensor, b: torch.Tensor, measures=MEASURES) -> dict:
    """The similarity measures of Adebayo et al. (2018), ``{name: (N,)}``, for maps (N, C, H, W):
    ``"spearman_abs"`` and ``"spearman"`` (rank correlation of the channel-summed maps, of their
    absolute values and signed), ``"ssim"`` and ``"hog"`` (of the absolute maps rescaled to [0, 1]);
    ``measures`` picks some of them."""
    from .localisation import pixel_map

    unknown = [m for m in measures if m not in MEASURES]
    if isinstance(measures, str) or unknown:
        raise ValueError(f"measures must be a sequence of names from {MEASURES}, got {measures!r}")
    x, y = pixel_map(a, "a"), pixel_map(b, "b")
    compute = {"spearman_abs": lambda: spearman(x, y, absolute=True), "spearman": lambda: spearman(x, y),
               "ssim": lambda: ssim(a, b), "hog": lambda: hog_similarity(a, b)}
    return {m: compute[m]() for m in measures}
