"""The masked-evaluation engine (chapters 6, 7, 8, 12 and the pixel-perturbation lab).

Occlusion, LIME, Kernel SHAP, exact Shapley values and XRAI all explain by *changing the input and
watching the output*: the model is run on copies of x in which some groups of features (windows,
superpixels) are replaced by a baseline,

    x̃(z) = z ⊙ x + (1 - z) ⊙ x'        (z = 1 keeps a feature, z = 0 replaces it by the baseline x'),

and each method is a choice of masks z and of how to weigh the outputs f(x̃(z)). This module does the
evaluation once for all of them, in batches of at most ``batch_size`` perturbed inputs (only one batch
of them exists at a time):

- :func:`evaluate` is the core: a function ``keep(example, row)`` gives the pixel masks z of the
  requested rows, and the model's outputs come back per example and row;
- :func:`masked_outputs` is the common case: z given per example as coalitions of segments
  (``masks (N, S, M)``: row s keeps the segments m with ``masks[n, s, m]``);
- :func:`check_segments`, :func:`make_fill` and :func:`paint` hold the shared conventions of
  ``segments`` and ``baseline`` and "each pixel holds its segment's value";
- :func:`superpixels` (quickshift, slic, felzenszwalb from scikit-image, or a square grid).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ._core import check_batch_size, check_call, check_inputs, check_model, explaining, fast_layout
from . import incremental
from .baselines import Baseline, make_baseline

OUTPUTS = ("target", "logits", "probabilities")
# The batch one worker evaluates: about 2^18 input elements (1 MB of float32: 21 images of 3x64x64),
# and at least 8 inputs. CPU caches favour small batches; measured on a quiet machine, no-grad forward
# passes on channels-last images, ms per image at batch 4/8/16/32/64/128/256: shapes_cnn .24/.18/.16/
# .16/.36/.41/.57, shapes_resnet at 4/8/16/32/64 .23/.15/.12/.14/.19; resnet18 (224x224) at
# 1/2/4/8/16/32: 30/21/14/11.4/11.7/11.8 ms.
ELEMENTS_PER_BATCH = 2 ** 18
MIN_BATCH = 8


def cpu_workers(inputs: torch.Tensor) -> int:
    """How many threads share a batch: torch's intra-op thread count on the CPU, else 1."""
    return max(1, torch.get_num_threads()) if inputs.device.type == "cpu" else 1


def default_batch_size(inputs: torch.Tensor, box: Optional[int] = None) -> int:
    """Perturbed inputs per batch: a cache-sized share (:data:`ELEMENTS_PER_BATCH`) for each worker.

    ``box``: the number of input elements a copy changes, when the model runs incrementally
    (:mod:`.incremental`): its activations are boxes a few times that size, a quarter as many fit.
    Measured here (occlusion, 8x8 windows on 64x64 images, shapes_cnn): 87-101 ms at 256-512 copies a
    worker, 119-131 ms at 700-900; resnet18 (32x32 windows on 224x224) 1.71-1.74 s at 24-64. At most
    16 times the full-image batch: the last layers run on full copies (a 1-pixel window would
    otherwise put tens of thousands of full resnet18 activations in one batch).
    """
    size = inputs[0].numel() if box is None else max(4 * box, inputs[0].numel() // 16)
    return cpu_workers(inputs) * max(MIN_BATCH, ELEMENTS_PER_BATCH // max(1, size))


# On the CPU a batch is split between ``cpu_workers`` Python threads, each running its share of the
# batch with one intra-op thread (torch releases the GIL inside its kernels). Measured here on 2 cores,
# no-grad forward passes over 1808 channels-last 64x64 images, median of 9 interleaved: shapes_cnn
# 622 / 336 ms with torch's own two threads per operation (batch 16 / 21) against 282 / 287 ms with
# two workers; shapes_resnet 382 / 337 against 304 / 276; resnet18 (64 images, 224x224) 706 against
# 619. One pass of a small convolution is too short to share well between cores: every operation
# ends with both threads waiting for the slower one, and on a shared machine one core is often late.
_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0
_POOL_NAME = "xai_course-masking"


def parallel_map(function: Callable, parts: Sequence) -> list:
    """``[function(part) for part in parts]``, the parts run at once on ``len(parts)`` threads, each with
    one intra-op thread (restored afterwards). A worker's exception is raised here. Grad mode is per
    thread: ``function`` sets its own."""
    global _pool, _pool_size
    if len(parts) <= 1 or threading.current_thread().name.startswith(_POOL_NAME):  # (nested: run here)
        return [function(part) for part in parts]
    if _pool is None or _pool_size < len(parts):
        _pool, _pool_size = ThreadPoolExecutor(len(parts), thread_name_prefix=_POOL_NAME), len(parts)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return list(_pool.map(function, parts))
    finally:
        torch.set_num_threads(threads)


def evaluate(model: nn.Module, inputs: torch.Tensor, target: Optional[torch.Tensor], fill: torch.Tensor,
             keep: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], rows: int,
             batch_size: Optional[int] = None, output: str = "target",
             box: Optional[Tuple[int, int, Callable]] = None) -> torch.Tensor:
    """The model's outputs on ``rows`` perturbed copies of each example: (N, rows) or (N, rows, classes).

    Perturbed copy (n, s) is ``where(keep(n, s), inputs[n], fill[n])``: ``keep`` takes two LongTensors
    (B,) of example and row indices and returns boolean masks (B, ...) broadcastable to one input
    each. Copies are evaluated in flat order p = n·rows + s, ``batch_size`` at a time (default:
    :func:`default_batch_size`); on the CPU each batch is shared between :func:`cpu_workers` threads
    (:func:`parallel_map`), so still at most ``batch_size`` perturbed inputs exist at once.
    ``output``: ``"target"`` (the target logit), ``"logits"`` or ``"probabilities"`` (softmax over all
    classes). Expects checked arguments; prepares the model.

    ``box = (height, width, corner)`` says that every copy differs from its input only inside a
    height × width box whose top-left corner ``corner(example, row)`` gives as two LongTensors (B,)
    (images only). The model is then run incrementally (:mod:`.incremental`: its first layers only
    where the change reaches) when it can be traced, else as a black box.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(map(repr, OUTPUTS))}, got {output!r}")
    n, total = inputs.shape[0], inputs.shape[0] * rows
    # oneDNN's CPU convolutions run faster on channels-last images (measured here, no-grad forward
    # passes of 256 images: shapes_cnn 2.3x, shapes_resnet 1.8x, resnet18 1.4x); values agree to
    # float32 rounding, and models without convolutions see the same numbers in the same order
    with explaining(model):        # (a model that flattens with .view takes the default layout)
        layout = fast_layout(inputs, model)
    x, fill = inputs.detach().contiguous(memory_format=layout), fill.detach()
    first = fill.reshape(-1)[:1]
    colour = fill[(slice(None), slice(None)) + (slice(0, 1),) * (fill.ndim - 2)]   # (N, C, 1, 1) for images
    fill_value = None
    if bool((fill == first).all()):     # one fill value (0.0, a number): no copies of the fill
        fill_value = first.item()
    elif fill.ndim > 2 and bool((fill == colour).all()):
        # one colour per image and channel (the "mean" fill, each image's minimum): kept (N, C, 1, 1)
        # and broadcast, not gathered at full size for every copy
        fill = colour.contiguous()
    else:
        fill = fill.contiguous(memory_format=layout)

    def copies(example: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
        if fill_value is None:
            return torch.where(keep(example, row), x[example], fill[example])
        return x[example].masked_fill_(~keep(example, row), fill_value)   # in place on the gathered copy

    def patches(example: torch.Tensor, row: torch.Tensor):   # the copies' boxes and corners
        height, width, corner = box
        top, left = corner(example, row)
        kept = incremental.crop(x, example, top, left, height, width)
        mask = keep(example, row).expand(len(example), *x.shape[1:])
        mask = incremental.crop(mask, torch.arange(len(example), device=x.device), top, left, height, width)
        if fill_value is not None:
            return kept.masked_fill_(~mask, fill_value), top, left
        filled = incremental.crop(fill.expand(n, *x.shape[1:]), example, top, left, height, width)
        return torch.where(mask, kept, filled), top, left

    def outputs(p: torch.Tensor) -> torch.Tensor:    # the copies p (a share of one batch)
        with torch.no_grad():
            example, row = p // rows, p % rows
            if local is not None:
                logits = local.run(example, *patches(example, row))
            else:                                    # (already laid out so: no copy)
                logits = model(copies(example, row).contiguous(memory_format=layout))
            if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != len(p):
                got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                raise ValueError(f"model must return logits of shape (N, classes) = ({len(p)}, classes), "
                                 f"got {got}")
            if output == "target":
                if (target < 0).any() or (target >= logits.shape[1]).any():
                    raise ValueError(f"target must be class indices in [0, {logits.shape[1] - 1}] (the model "
                                     f"has {logits.shape[1]} outputs), got {target.tolist()}")
                return logits.gather(1, target[example][:, None])[:, 0]
            return logits.softmax(1) if output == "probabilities" else logits

    results = []
    with explaining(model):
        local = None
        if box is not None and x.ndim == 4 and layout == torch.channels_last:   # (its patches are so)
            local = incremental.plan(model, x)      # (runs without grad)
        chunk = check_batch_size(batch_size) or default_batch_size(
            inputs, None if local is None else x.shape[1] * box[0] * box[1])
        workers = min(cpu_workers(inputs), chunk)
        for start in range(0, total, chunk):
            p = torch.arange(start, min(start + chunk, total), device=inputs.device)
            results.extend(parallel_map(outputs, [part for part in p.tensor_split(workers) if len(part)]))
    out = torch.cat(results)
    return out.view(n, rows, *out.shape[1:])


# ---------------------------------------------------------------- segments, baselines, painting
def check_segments(segments, inputs: torch.Tensor, name: str = "segments") -> Tuple[torch.Tensor, torch.Tensor]:
    """``segments`` as a LongTensor (N, H, W) for images or (N, D) for flat inputs, and M per example.

    Accepts (N, H, W) or (H, W) for images (N, C, H, W), (N, D) or (D,) for flat inputs (N, D); labels
    0..M-1 (a label that never occurs is an empty segment: it changes nothing and gets the value 0).
    ``None``: :func:`superpixels` of the images with their defaults; each feature its own segment for
    flat inputs.
    """
    spatial = tuple(inputs.shape[2:]) if inputs.ndim == 4 else tuple(inputs.shape[1:])
    n = inputs.shape[0]
    if inputs.ndim not in (2, 4):
        raise ValueError(f"{name} need inputs (N, D) or (N, C, H, W), got inputs of shape {tuple(inputs.shape)}")
    if segments is None:
        if inputs.ndim == 4:
            segments = superpixels(inputs)
        else:
            segments = torch.arange(spatial[0], device=inputs.device).expand(n, -1)
    if not isinstance(segments, torch.Tensor):
        raise TypeError(f"{name} must be a LongTensor of labels, got {type(segments).__name__}")
    if segments.is_floating_point() or segments.is_complex() or segments.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer labels 0..M-1, got dtype {segments.dtype}")
    if tuple(segments.shape) == spatial:
        segments = segments.expand(n, *spatial)
    if tuple(segments.shape) != (n,) + spatial:
        expected = f"({n}, {spatial[0]}, {spatial[1]}) or {spatial}" if inputs.ndim == 4 else f"({n}, {spatial[0]}) or {spatial}"
        raise ValueError(f"{name} must have shape {expected} for inputs of shape {tuple(inputs.shape)}, "
                         f"got {tuple(segments.shape)}")
    if segments.device != inputs.device:
        raise ValueError(f"{name} is on {segments.device} but inputs are on {inputs.device}")
    segments = segments.long()
    if (segments < 0).any():
        raise ValueError(f"{name} must hold labels 0..M-1, got a negative label {segments.min().item()}")
    return segments.contiguous(), segments.flatten(1).max(1).values + 1


def paint(values: torch.Tensor, segments: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Each element of a tensor shaped like ``inputs`` holds its segment's value (values (N, M))."""
    flat = values.to(inputs.dtype).gather(1, segments.flatten(1)).view(segments.shape)
    if inputs.ndim == 4:
        flat = flat[:, None].expand_as(inputs)
    return flat.contiguous()


def segment_means(inputs: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Each element replaced by the mean of its segment, per channel (the lime library's fill)."""
    n, m = inputs.shape[0], int(segments.max()) + 1
    flat = segments.flatten(1)
    x = inputs.detach().flatten(2) if inputs.ndim == 4 else inputs.detach()[:, None]
    c = x.shape[1]
    index = flat[:, None].expand(n, c, -1)
    sums = x.new_zeros(n, c, m).scatter_add_(2, index, x)
    counts = x.new_zeros(n, 1, m).scatter_add_(2, flat[:, None], torch.ones_like(x[:, :1]))
    means = (sums / counts.clamp(min=1)).gather(2, index)
    return means.view_as(inputs)


def make_fill(inputs: torch.Tensor, baseline: Union[Baseline, str], segments: Optional[torch.Tensor] = None,
              name: str = "baseline") -> torch.Tensor:
    """The values a removed feature takes, shaped like ``inputs``: a number, ``"mean"`` (each segment's
    own mean colour; needs ``segments``), a name of :func:`make_baseline` or a tensor like ``inputs``."""
    if isinstance(baseline, str) and baseline == "mean":
        if segments is None:
            raise ValueError(f"{name}='mean' (each segment's mean colour) needs segments")
        return segment_means(inputs, segments)
    if baseline is None:
        raise TypeError(f"{name} must be a number, 'mean', a baseline name or a tensor like inputs, got None")
    return make_baseline(inputs, baseline, name=name)


def coalition_keep(masks: torch.Tensor, segments: torch.Tensor, inputs: torch.Tensor):
    """The ``keep`` function of :func:`evaluate` for coalitions ``masks (N, S, M)`` of segments."""
    flat = segments.flatten(1)
    shape = (-1, 1) + tuple(segments.shape[1:]) if inputs.ndim == 4 else (-1,) + tuple(segments.shape[1:])

    def keep(example, row):
        return masks[example, row].gather(1, flat[example]).view(shape)

    return keep


def masked_outputs(model: nn.Module, inputs: torch.Tensor, target, masks: torch.Tensor, segments=None,
                   baseline: Union[Baseline, str] = 0.0, batch_size: Optional[int] = None,
                   output: str = "target") -> torch.Tensor:
    """The model's outputs on the inputs with only some segments kept: (N, S) or (N, S, classes).

    ``masks``: a boolean tensor (N, S, M) or (S, M) (the same coalitions for every example): row s
    keeps segment m where ``masks[n, s, m]`` is True and fills the others from ``baseline`` (see
    :func:`make_fill`). ``segments``: see :func:`check_segments`; M must be at least the number of
    segments. ``output``: ``"target"`` (then ``target`` picks the logit), ``"logits"`` or
    ``"probabilities"`` (``target`` may be None). At most ``batch_size`` perturbed inputs exist at once.

    Example: the target logit with nothing, segment 0 only, and everything kept::

        masks = torch.tensor([[False, False], [True, False], [True, True]])
        masked_outputs(model, x, 3, masks, segments=two_halves, baseline=0.0)   # (N, 3)
    """
    if output != "target" and target is None:
        check_model(model)
        check_inputs(inputs)
        target_tensor = None
    else:
        model, inputs, target_tensor = check_call(model, inputs, target)
    segments, counts = check_segments(segments, inputs)
    if not isinstance(masks, torch.Tensor) or masks.dtype != torch.bool:
        raise TypeError(f"masks must be a boolean tensor (N, S, M) or (S, M), got "
                        f"{masks.dtype if isinstance(masks, torch.Tensor) else type(masks).__name__}")
    if masks.ndim == 2:
        masks = masks.expand(inputs.shape[0], *masks.shape)
    if masks.ndim != 3 or masks.shape[0] != inputs.shape[0] or masks.shape[2] < int(counts.max()):
        raise ValueError(f"masks must have shape (N, S, M) or (S, M) with N = {inputs.shape[0]} and M >= "
                         f"{int(counts.max())} segments, got {tuple(masks.shape)}")
    fill = make_fill(inputs, baseline, segments)
    keep = coalition_keep(masks.to(inputs.device), segments, inputs)
    return evaluate(model, inputs, target_tensor, fill, keep, masks.shape[1], batch_size, output)


# ---------------------------------------------------------------- superpixels
SEGMENTERS = ("quickshift", "slic", "felzenszwalb", "grid")
DEFAULTS = {"quickshift": dict(kernel_size=3, max_dist=20, ratio=0.5),
            "slic": dict(n_segments=16, compactness=10.0, start_label=0),
            "felzenszwalb": dict(scale=100.0, sigma=0.5, min_size=30),
            "grid": dict(cells=4)}


def grid(height: int, width: int, cells=4) -> np.ndarray:
    """Labels of a grid of ``cells`` × ``cells`` (or ``(rows, cols)``) near-equal rectangles, row-major."""
    rows, cols = (cells, cells) if isinstance(cells, int) else tuple(cells)
    if not all(isinstance(k, int) and 1 <= k for k in (rows, cols)) or rows > height or cols > width:
        raise ValueError(f"cells must be an int or (rows, cols) between 1 and the image size "
                         f"{(height, width)}, got {cells!r}")
    r = np.arange(height) * rows // height
    c = np.arange(width) * cols // width
    return r[:, None] * cols + c[None, :]


def superpixels(images: torch.Tensor, method: str = "quickshift", **options) -> torch.Tensor:
    """Superpixel labels 0..M-1 of each image: a LongTensor (N, H, W) (chapter 7).

    ``method``: ``"quickshift"``, ``"slic"``, ``"felzenszwalb"`` (scikit-image; ``options`` go to it,
    on top of :data:`DEFAULTS`, which suit the course's 64×64 images) or ``"grid"`` (``cells=k``: k×k
    squares, or ``(rows, cols)``). Images (N, C, H, W) with 1 or 3 channels; an image with values
    outside [0, 1] is min-max rescaled to [0, 1] first (segmentation looks at colours only).
    """
    check_inputs(images, "images")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, C, H, W) with 1 or 3 channels, got shape {tuple(images.shape)}")
    if method not in SEGMENTERS:
        raise ValueError(f"method must be one of {', '.join(map(repr, SEGMENTERS))}, got {method!r}")
    options = {**DEFAULTS[method], **options}
    n, c, h, w = images.shape
    if method == "grid":
        labels = torch.from_numpy(grid(h, w, **options)).long()
        return labels.expand(n, h, w).clone().to(images.device)
    import skimage.segmentation as segmentation

    out = []
    for image in images.detach().cpu().double().numpy():
        low, high = image.min(), image.max()
        if low < 0 or high > 1:
            image = (image - low) / max(high - low, 1e-12)
        image = np.ascontiguousarray(image.transpose(1, 2, 0))
        if method == "quickshift":
            if c == 1:
                image = np.repeat(image, 3, axis=2)
            labels = segmentation.quickshift(image, convert2lab=c == 3, **options)
        elif method == "slic":
            labels = segmentation.slic(image, channel_axis=-1, convert2lab=c == 3, **options)
        else:
            labels = segmentation.felzenszwalb(image, channel_axis=-1, **options)
        out.append(np.unique(labels, return_inverse=True)[1].reshape(h, w))
    return torch.from_numpy(np.stack(out)).long().to(images.device)
