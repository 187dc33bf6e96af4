"""ROAR and ROAD (lab 15): does removing what an explanation ranks first really remove the evidence?

**ROAR** (RemOve And Retrain; Hooker, Erhan, Kindermans & Kim, "A Benchmark for Interpretability
Methods in Deep Neural Networks", NeurIPS 2019). Removing pixels and re-running the *same* model
(pixel perturbation, lab 14) cannot tell "the evidence is gone" from "the image no longer looks like
anything the model was trained on". ROAR retrains: for each method and fraction ``f``, the top
``round(f·H·W)`` pixels of every train and test image (ranked with the original model's
attributions) are replaced by the image's per-channel mean, a FRESH model is trained from scratch on
the modified training set, and its accuracy on the modified test set is reported. A better ranking
removes more of the evidence, so the accuracy falls faster; a random ranking is the baseline.

**ROAD** (RemOve And Debias; Rong, Leemann, Borisov, Kasneci & Kasneci, "A Consistent and Efficient
Evaluation Strategy for Attribution Methods", ICML 2022). Under mean fill the *pattern* of the removed
pixels leaks the class: a hole shaped like a star says "star" to a retrained model (and to the
original one), so ROAR can rank a method low because its removal gives the answer away. ROAD fills
each removed pixel by **noisy linear imputation**, the weighted mean of its 8 neighbours (weight 1/6
for the 4 direct, 1/12 for the 4 diagonal ones), solved jointly for all removed pixels as one sparse
linear system, plus a little Gaussian noise; the hole blends in, the pattern says little, and the
original model can be evaluated without any retraining (ROAD's point: consistent rankings at a
fraction of ROAR's cost).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import spsolve
from torch import nn

from ..attribution._core import batches, check_call, check_inputs, check_int, check_number, explaining, make_generator
from .perturbation import _check_attributions, check_fractions, perturb

# ROAD's neighbour weights: (dh, dw) -> weight; direct neighbours 1/6, diagonal ones 1/12 (sum 1)
NEIGHBOURS = {(-1, 0): 1 / 6, (1, 0): 1 / 6, (0, -1): 1 / 6, (0, 1): 1 / 6,
              (-1, -1): 1 / 12, (-1, 1): 1 / 12, (1, -1): 1 / 12, (1, 1): 1 / 12}
SOLVE_PIXELS = 2 ** 17  # pixels per sparse solve (32 images of 64x64): bounds the LU's memory


def tiny_cnn(num_classes: int = 5, in_channels: int = 3, width: int = 8) -> nn.Sequential:
    """The small CNN that ROAR retrains again and again (seconds per training on a CPU core).

    2x2 average pooling (64x64 -> 32x32), three conv-BatchNorm-ReLU stages (width, 2·width,
    4·width channels; max-pooling after the first two), global max-pooling, one linear layer.
    Standard ``torch.nn`` layers only, no dropout: training is deterministic given the seed.
    """
    w = check_int(width, "width")
    return nn.Sequential(
        nn.AvgPool2d(2),
        nn.Conv2d(in_channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes))


def train_classifier(make_model: Callable[[], nn.Module], images: torch.Tensor, labels: torch.Tensor,
                     epochs: int = 10, seed: int = 0, batch_size: int = 50, lr: float = 5e-3) -> nn.Module:
    """A fresh ``make_model()`` trained from scratch: Adam, learning rate decaying linearly to 0.

    Deterministic from ``seed`` (the initial weights and the order of the examples); torch's global
    random state is left as it was. Returns the model in eval mode.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make_model()
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(labels) / batch_size)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1 - step / steps)
    model.train()
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(len(labels), generator=gen)
            for start, end in batches(len(labels), batch_size):
                idx = order[start:end]
                loss = F.cross_entropy(model(images[idx]), labels[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """The share of ``images`` that ``model`` (in eval mode) classifies as ``labels``."""
    correct = sum((model(images[s:e]).argmax(1) == labels[s:e]).sum().item()
                  for s, e in batches(len(labels), batch_size))
    return correct / len(labels)


@dataclass
class RoarResult:
    """ROAR's test accuracies ``accuracy[m, f, s]`` (method m, fraction f, seed s) and what they cost."""

    methods: Tuple[str, ...]
    fractions: Tuple[float, ...]
    seeds: Tuple[int, ...]
    accuracy: torch.Tensor  # (methods, fractions, seeds), float64
    trainings: int  # models trained from scratch
    seconds: float  # wall-clock time of the whole run
    settings: Dict = field(default_factory=dict)

    def interval(self, level: float = 0.95) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(mean, half_width)``, each (methods, fractions): Student-t interval over the seeds."""
        from scipy.stats import t

        s = len(self.seeds)
        mean = self.accuracy.mean(-1)
        if s < 2:
            return mean, torch.zeros_like(mean)
        sem = self.accuracy.std(-1, unbiased=True) / math.sqrt(s)
        return mean, sem * float(t.ppf(0.5 + level / 2, s - 1))

    def to_dict(self) -> dict:
        return {"methods": list(self.methods), "fractions": list(self.fractions), "seeds": list(self.seeds),
                "accuracy": self.accuracy.tolist(), "trainings": self.trainings,
                "seconds": round(self.seconds, 1), "settings": self.settings}

    @classmethod
    def from_dict(cls, d: Mapping) -> "RoarResult":
        return cls(tuple(d["methods"]), tuple(d["fractions"]), tuple(d["seeds"]),
                   torch.tensor(d["accuracy"], dtype=torch.float64), d["trainings"], d["seconds"],
                   dict(d.get("settings", {})))


def _check_data(images, labels, name):
    check_inputs(images, f"{name}_images")
    if images.ndim != 4:
        raise ValueError(f"{name}_images must be images (N, C, H, W), got shape {tuple(images.shape)}")
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long or labels.shape != images.shape[:1]:
        raise ValueError(f"{name}_labels must be a LongTensor of {images.shape[0]} class indices, got "
                         f"{getattr(labels, 'dtype', type(labels).__name__)} "
                         f"{tuple(getattr(labels, 'shape', ()))}")


def roar(make_model: Callable[[], nn.Module], train_images: torch.Tensor, train_labels: torch.Tensor,
         test_images: torch.Tensor, test_labels: torch.Tensor,
         attributions: Mapping[str, Tuple[torch.Tensor, torch.Tensor]], fractions: Sequence[float],
         seeds: Sequence[int] = (0, 1, 2), epochs: int = 10, random_baseline: bool = True,
         batch_size: int = 50, lr: float = 5e-3, fill="mean", threads: Optional[int] = None) -> RoarResult:
    """RemOve And Retrain (Hooker et al., 2019): test accuracy of fresh models trained without the top pixels.

    ``attributions``: ``{method name: (train attributions, test attributions)}``, computed beforehand
    with the ORIGINAL trained model, shaped like the images (or one channel). For every method,
    fraction f and seed s: ``perturb(images, attributions, f, "most", fill)`` on both sets (mean fill
    by default, as in the paper), a fresh ``make_model()`` trained ``epochs`` epochs with
    :func:`train_classifier` (seed s), its accuracy on the modified test set. ``random_baseline`` adds
    the method ``"random"`` (``order="random"``, seeded with s). A fraction that removes no pixel is
    trained once per seed and shared by all methods. ``threads``: torch's CPU threads during the run
    (1 is fastest for the tiny CNN on a busy machine), restored afterwards. Returns a :class:`RoarResult`.
    """
    threads = check_int(threads, "threads", allow_none=True)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _roar(make_model, train_images, train_labels, test_images, test_labels, attributions, fractions,
                     seeds, epochs, random_baseline, batch_size, lr, fill)
    finally:
        torch.set_num_threads(before)


def _roar(make_model, train_images, train_labels, test_images, test_labels, attributions, fractions, seeds,
          epochs, random_baseline, batch_size, lr, fill) -> RoarResult:
    start = time.perf_counter()
    if not callable(make_model):
        raise TypeError(f"make_model must be a function that builds a fresh model, got {type(make_model).__name__}")
    _check_data(train_images, train_labels, "train")
    _check_data(test_images, test_labels, "test")
    if not isinstance(attributions, Mapping) or not (attributions or random_baseline):
        raise ValueError("attributions must be a dict {method name: (train_attributions, test_attributions)}")
    for name, pair in attributions.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"attributions[{name!r}] must be a pair (train_attributions, test_attributions)")
    if random_baseline and "random" in attributions:
        raise ValueError("attributions has a method named 'random': rename it or pass random_baseline=False")
    fractions = check_fractions(fractions).tolist()
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be a non-empty sequence of ints, got {seeds!r}")
    epochs = check_int(epochs, "epochs")
    batch_size = check_int(batch_size, "batch_size")
    lr = check_number(lr, "lr", meaning="the learning rate")
    for name, (train_attr, test_attr) in attributions.items():  # all checked before any training
        _check_attributions(train_images, train_attr)
        _check_attributions(test_images, test_attr)
    methods = list(attributions) + (["random"] if random_baseline else [])
    height, width = train_images.shape[2:]
    acc = torch.zeros(len(methods), len(fractions), len(seeds), dtype=torch.float64)
    unmodified: Dict[int, float] = {}
    trainings = 0
    for m, name in enumerate(methods):
        for f, fraction in enumerate(fractions):
            if name != "random":  # the same modified sets for every seed
                train = perturb(train_images, attributions[name][0], fraction, "most", fill)
                test = perturb(test_images, attributions[name][1], fraction, "most", fill)
            for s, seed in enumerate(seeds):
                if round(fraction * height * width) == 0 and seed in unmodified:
                    acc[m, f, s] = unmodified[seed]
                    continue
                if name == "random":  # a new random ranking for every seed
                    ones = torch.ones_like(train_images[:, :1])
                    train = perturb(train_images, ones, fraction, "random", fill, seed=seed)
                    test = perturb(test_images, torch.ones_like(test_images[:, :1]), fraction, "random",
                                   fill, seed=seed + 1_000_003)
                model = train_classifier(make_model, train, train_labels, epochs, seed, batch_size, lr)
                trainings += 1
                acc[m, f, s] = accuracy(model, test, test_labels)
                if round(fraction * height * width) == 0:
                    unmodified[seed] = acc[m, f, s].item()
    return RoarResult(tuple(methods), tuple(fractions), tuple(seeds), acc, trainings,
                      time.perf_counter() - start,
                      dict(epochs=epochs, batch_size=batch_size, lr=lr, fill=fill if isinstance(fill, str) else "custom",
                           train_size=len(train_labels), test_size=len(test_labels)))


def noisy_linear_imputation(inputs: torch.Tensor, removed: torch.Tensor, noise: float = 0.01,
                            seed: Optional[int] = None) -> torch.Tensor:
    """ROAD's imputation (Rong et al., 2022): each removed pixel becomes the weighted mean of its neighbours.

    ``removed``: booleans ``(N, 1, H, W)`` or ``(N, H, W)``, True where a pixel (all channels) is
    removed. For every removed pixel i with in-image neighbours j (weights w_ij in :data:`NEIGHBOURS`),

        (Σ_j w_ij) x_i − Σ_{j removed} w_ij x_j = Σ_{j kept} w_ij x_j,

    one sparse linear system per image (all channels at once, float64; the systems of up to
    :data:`SOLVE_PIXELS` pixels' worth of images solved together), so a hole is filled from its
    border inwards; then Gaussian noise of standard deviation ``noise`` is added to the imputed values
    only (drawn from a generator seeded with ``seed``). Kept pixels are returned unchanged. An image
    with every pixel removed has nothing to impute from: a ValueError.
    """
    check_inputs(inputs)
    if inputs.ndim != 4:
        raise ValueError(f"inputs must be images (N, C, H, W), got shape {tuple(inputs.shape)}")
    n, c, h, w = inputs.shape
    if not isinstance(removed, torch.Tensor) or removed.dtype != torch.bool:
        raise TypeError(f"removed must be a bool tensor (N, 1, H, W), got {getattr(removed, 'dtype', type(removed).__name__)}")
    if removed.ndim == 4 and removed.shape[1] == 1:
        removed = removed[:, 0]
    if tuple(removed.shape) != (n, h, w):
        raise ValueError(f"removed must be (N, 1, H, W) = ({n}, 1, {h}, {w}) like the inputs, got "
                         f"{tuple(removed.shape)}")
    noise = check_number(noise, "noise", meaning="the standard deviation of the noise on imputed pixels")
    gen = make_generator(seed, "cpu")
    mask = removed.cpu().numpy().reshape(-1)
    full = mask.reshape(n, h * w).all(axis=1)
    if full.any():
        raise ValueError(f"removed covers every pixel of image {int(np.flatnonzero(full)[0])}: nothing is "
                         f"left to impute from")
    out = inputs.detach().clone().permute(0, 2, 3, 1).reshape(n * h * w, c)  # a copy, pixel-major
    pixels = inputs.detach().cpu().double().permute(0, 2, 3, 1).reshape(n * h * w, c).numpy()
    step = max(1, SOLVE_PIXELS // (h * w))  # images per solve: bounded memory for the factorisation
    for first in range(0, n, step):
        lo, hi = first * h * w, min(n, first + step) * h * w
        unknown, values = _solve_block(pixels[lo:hi], mask[lo:hi], h, w)
        if unknown.size == 0:
            continue
        values = torch.from_numpy(values)
        if noise > 0:
            values = values + noise * torch.randn(values.shape, generator=gen, dtype=values.dtype)
        out[torch.from_numpy(lo + unknown).to(out.device)] = values.to(out)
    return out.view(n, h, w, c).permute(0, 3, 1, 2).contiguous()


def _solve_block(pixels: np.ndarray, mask: np.ndarray, h: int, w: int):
    """The imputed values of the removed pixels of a few images: ``(unknown, values (K, C))``.

    ``pixels`` ``(n·H·W, C)`` and ``mask`` ``(n·H·W,)`` hold the images one after another, pixel by
    pixel (flat index n·H·W + h·W + w), so their systems form one block-diagonal matrix.
    """
    unknown = np.flatnonzero(mask)
    if unknown.size == 0:
        return unknown, np.zeros((0, pixels.shape[1]))
    var = -np.ones(mask.size, dtype=np.int64)
    var[unknown] = np.arange(unknown.size)
    uh, uw = (unknown // w) % h, unknown % w
    diag, rhs = np.zeros(unknown.size), np.zeros((unknown.size, pixels.shape[1]))
    rows, cols, vals = [np.arange(unknown.size)], [np.arange(unknown.size)], []
    for (dh, dw), weight in NEIGHBOURS.items():
        inside = (uh + dh >= 0) & (uh + dh < h) & (uw + dw >= 0) & (uw + dw < w)
        diag[inside] += weight  # the weights of the neighbours inside the image
        j = np.where(inside, unknown + dh * w + dw, 0)
        free, kept = inside & (var[j] >= 0), inside & (var[j] < 0)
        rows.append(np.flatnonzero(free))  # a removed neighbour: -w_ij on the left
        cols.append(var[j[free]])
        vals.append(np.full(rows[-1].size, -weight))
        rhs[kept] += weight * pixels[j[kept]]  # a kept neighbour: w_ij x_j on the right
    a = csc_matrix((np.concatenate([diag] + vals), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(unknown.size, unknown.size))
    # the row-major pixel order keeps the matrix banded (bandwidth about W): no reordering needed
    return unknown, spsolve(a, rhs, permc_spec="NATURAL").reshape(unknown.size, -1)


def removed_pixels(inputs: torch.Tensor, attributions: torch.Tensor, fraction: float, order: str = "most",
                   seed: Optional[int] = None) -> torch.Tensor:
    """The pixels ``perturb(inputs, attributions, fraction, order, seed=seed)`` removes: bool (N, 1, H, W)."""
    probe = torch.ones_like(inputs[:, :1])
    ranks = _check_attributions(inputs, attributions)[:, None]     # the pixel map (N, 1, H, W), checked
    return perturb(probe, ranks, fraction, order, fill=0.0, seed=seed) == 0


def road(model: nn.Module, inputs: torch.Tensor, target, attributions: torch.Tensor, fractions,
         order: str = "most", noise: float = 0.01, seed: Optional[int] = None,
         batch_size: Optional[int] = None) -> Dict[str, torch.Tensor]:
    """ROAD (Rong et al., 2022): the ORIGINAL model on images whose top pixels are imputed, no retraining.

    For every fraction f, the pixels ``perturb`` would remove (``order`` "most", "least" or "random",
    ranked by ``attributions``) are filled by :func:`noisy_linear_imputation` (noise ``noise``, seeded
    with ``seed`` + the fraction's index) and the model is run on the result. Returns a dict of
    ``(F, N)`` tensors: ``"probability"`` (softmax probability of the target class) and ``"correct"``
    (argmax == target). ROAR needs one model training per method, fraction and seed; ROAD needs
    ``F·N`` forward passes and ``F·N`` sparse solves.
    """
    model, inputs, target = check_call(model, inputs, target)
    fractions = check_fractions(fractions).tolist()
    batch_size = check_int(batch_size, "batch_size", allow_none=True)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    probability = torch.empty(len(fractions), inputs.shape[0])
    correct = torch.empty(len(fractions), inputs.shape[0], dtype=torch.bool)
    with explaining(model), torch.no_grad():
        for f, fraction in enumerate(fractions):
            removed = removed_pixels(inputs, attributions, fraction, order, seed)
            imputed = noisy_linear_imputation(inputs, removed, noise, None if seed is None else seed + f)
            for s, e in batches(inputs.shape[0], batch_size):
                logits = model(imputed[s:e])
                if logits.ndim != 2 or logits.shape[0] != e - s:
                    raise ValueError(f"model must return logits (N, classes), got shape {tuple(logits.shape)}")
                if (target >= logits.shape[1]).any():
                    raise ValueError(f"target must be class indices in [0, {logits.shape[1] - 1}], got "
                                     f"{target.tolist()}")
                probability[f, s:e] = logits.softmax(1).gather(1, target[s:e, None])[:, 0].cpu()
                correct[f, s:e] = (logits.argmax(1) == target[s:e]).cpu()
    return {"probability": probability, "correct": correct}
