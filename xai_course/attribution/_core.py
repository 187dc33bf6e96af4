"""What every attribution method shares: input checks, model hygiene, the target gradient, the registry.

Every method is ``method(model, inputs, target, **options) -> Tensor`` with the shape of ``inputs``.
The helpers here make that contract hold in one place:

- :func:`check_call` turns bad arguments into a clear ``TypeError``/``ValueError`` naming the parameter;
- :func:`explaining` puts the model in eval mode, enables autograd (also under an outer
  ``torch.no_grad()``) and restores the mode afterwards, whatever happens;
- :func:`target_logits` runs the model and checks it returns logits ``(N, classes)``;
- :func:`gradient_of_target` is d logit[target] / d inputs, the building block of the gradient chapters;
- :func:`check_int`, :func:`check_number`, :func:`check_batch_size` and :func:`make_generator` check the
  shared options (``steps``, ``samples``, ``noise``, ``batch_size``, ``seed``) with one wording;
- :func:`batches` is the one batching loop: the ``(start, end)`` ranges of at most ``batch_size``.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import warnings
import weakref
from numbers import Integral
from numbers import Real
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

import torch
from torch import nn

Target = Union[int, Sequence[int], torch.Tensor]

METHODS: Dict[str, Callable[..., torch.Tensor]] = {}


def register(name: str):
    """Decorator: add an attribution function to :data:`METHODS` under ``name``."""

    def add(function):
        if name in METHODS:
            raise ValueError(f"an attribution method named {name!r} is registered already")
        METHODS[name] = function
        return function

    return add


def check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def check_inputs(inputs, name: str = "inputs") -> torch.Tensor:
    """A floating tensor with a batch dimension, ``(N, D)`` or ``(N, C, H, W)``, all finite."""
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(inputs).__name__}")
    if not inputs.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {inputs.dtype}")
    if inputs.ndim not in (2, 3, 4, 5):
        raise ValueError(f"{name} must be a batch: (N, D) or (N, C, H, W), got shape {tuple(inputs.shape)} "
                         f"(add a batch dimension with {name}[None] for one example)")
    if inputs.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example, got an empty batch")
    # a finite sum proves every element finite (NaN and inf propagate); only a sum that overflowed
    # needs the elementwise check. This keeps the check at a few microseconds.
    if not torch.isfinite(inputs.sum()) and not torch.isfinite(inputs).all():
        raise ValueError(f"{name} must be finite, but it contains NaN or infinite values")
    return inputs


def check_target(target: Target, n: int) -> torch.Tensor:
    """An int, a sequence of N ints or an integer tensor of shape () or (N,), as a LongTensor (N,)."""
    if isinstance(target, bool) or target is None:
        raise TypeError(f"target must be an int, a sequence of N ints or a LongTensor, got {target!r}")
    if type(target).__module__ == "numpy" and hasattr(target, "shape"):  # numpy scalars and arrays
        target = torch.as_tensor(target)
    if isinstance(target, Integral):
        target = torch.full((n,), int(target), dtype=torch.long)
    elif isinstance(target, torch.Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
        target = target.reshape(-1).long() if target.ndim <= 1 else target
        if target.ndim == 1 and target.numel() == 1:
            target = target.expand(n)
    elif isinstance(target, Sequence) and not isinstance(target, str):
        if not all(isinstance(t, Integral) and not isinstance(t, bool) for t in target):
            raise TypeError(f"target must hold integer class indices, got {list(target)!r}")
        target = torch.tensor(list(target), dtype=torch.long)
    else:
        raise TypeError(f"target must be an int, a sequence of N ints or a LongTensor, got {type(target).__name__}")
    if target.shape != (n,):
        raise ValueError(f"target must give one class per example: {n} of them, got shape {tuple(target.shape)}")
    if (target < 0).any():
        raise ValueError(f"target must be class indices >= 0, got {target.tolist()}")
    return target


def check_int(value, name: str, minimum: int = 1, allow_none: bool = False) -> Optional[int]:
    """An int (not a bool, not a float such as 2.0) >= ``minimum``, or None if ``allow_none``.

    A bad value is a ``ValueError`` that names the parameter: "samples must be a positive int, got 0".
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {what}{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def check_number(value, name: str, minimum: float = 0.0, meaning: str = "") -> float:
    """A real number (not a bool, not a string) >= ``minimum``, as a float; ``meaning`` ends the error.

    "noise must be a number >= 0 (a fraction of each input's range), got -0.1".
    """
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a number >= {minimum:g}{f' ({meaning})' if meaning else ''}, "
                         f"got {value!r}")
    return float(value)


def check_batch_size(batch_size) -> Optional[int]:
    """``batch_size``: a positive int, or None for everything in one batch."""
    return check_int(batch_size, "batch_size", allow_none=True)


def make_generator(seed, device) -> Optional[torch.Generator]:
    """A private generator seeded with ``seed``; None (torch's global generator) when ``seed`` is None."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    return torch.Generator(device=device).manual_seed(int(seed))


def batches(total: int, batch_size: Optional[int]) -> Iterator[Tuple[int, int]]:
    """The ``(start, end)`` ranges that cover ``range(total)`` in order, each at most ``batch_size`` long
    (one range, everything at once, for ``batch_size=None``). Every batched loop of the package uses it."""
    size = batch_size or max(total, 1)
    for start in range(0, total, size):
        yield start, min(start + size, total)


def check_call(model, inputs, target):
    """Check the three arguments every method takes; returns ``(model, inputs, target)`` normalised."""
    check_model(model)
    check_inputs(inputs)
    target = check_target(target, inputs.shape[0])
    device = next((p.device for p in model.parameters()), inputs.device)
    if device != inputs.device:
        raise ValueError(f"inputs are on {inputs.device} but the model is on {device}: move one of them "
                         f"(inputs.to({str(device)!r}) or model.to({str(inputs.device)!r}))")
    return model, inputs, target.to(inputs.device)


def target_logits(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Run the model and pick logit[n, target[n]] for each example; checks the output's shape."""
    out = model(inputs)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != inputs.shape[0]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model must return logits of shape (N, classes) = ({inputs.shape[0]}, classes), got {got}")
    if (target < 0).any() or (target >= out.shape[1]).any():
        raise ValueError(f"target must be class indices in [0, {out.shape[1] - 1}] (the model has "
                         f"{out.shape[1]} outputs), got {target.tolist()}")
    return out.gather(1, target[:, None]).squeeze(1)


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside this package and contextlib: the user's call."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and (os.path.abspath(frame.f_code.co_filename).startswith(here)
                                 or frame.f_code.co_filename == contextlib.__file__):
        frame, level = frame.f_back, level + 1
    return level


@contextlib.contextmanager
def explaining(model: nn.Module):
    """Prepare ``model`` to be explained and restore it afterwards, whatever happens inside.

    A model in train mode is explained as the eval-mode model it would be deployed as (with a warning):
    BatchNorm uses its running statistics, which the forward passes do not update, and dropout is off.
    Autograd is enabled inside, also under an outer ``torch.no_grad()``. Parameters keep their
    ``requires_grad`` flags and their ``.grad``: methods differentiate with ``torch.autograd.grad``
    with respect to the inputs only, which neither computes nor accumulates parameter gradients.
    """
    modes = {m: m.training for m in model.modules()}
    training = any(modes.values())
    if training:
        warnings.warn("model is in train mode: explaining it as the eval-mode model it would be deployed as "
                      "(call model.eval() first to silence this); its mode is restored afterwards",
                      stacklevel=_caller_level())
    try:
        if training:
            model.eval()
        with torch.enable_grad():
            yield model
    finally:
        if training:
            for m, mode in modes.items():
                m.training = mode


def gradient_of_target(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """d logit[n, target[n]] / d inputs[n] for every example n, in one batched forward and backward.

    Expects checked arguments and a prepared model (see :func:`explaining`). The examples are
    independent, so the gradient of the sum of the picked logits is each example's own gradient.
    """
    x = inputs.detach().requires_grad_(True)
    # the model sees a copy: one that modifies its input in place leaves ``inputs`` and the leaf intact;
    # on CPU a channels-last copy of images: oneDNN's convolutions (forward and backward) run faster so
    (grad,) = torch.autograd.grad(target_logits(model, x.clone(memory_format=fast_layout(x, model)), target).sum(), x)
    return grad.contiguous()


def fast_layout(x: torch.Tensor, model: Optional[nn.Module] = None) -> torch.memory_format:
    """``torch.channels_last`` for images on the CPU (oneDNN's convolutions are faster on it), else
    ``torch.contiguous_format``. Values agree with the default layout to float32 rounding.

    With ``model``: the default layout for a model that cannot run on channels-last images, such as one
    that flattens with ``h.view(len(h), -1)`` (a view cannot merge channels-last dimensions; ``reshape``
    and ``flatten`` can). Images one pixel wide keep the default layout too (torch 2.14's channels-last
    CPU convolution crashes on some of them). Call it with the model prepared (:func:`explaining`).
    """
    if x.ndim != 4 or x.device.type != "cpu" or x.shape[-1] < 2:
        return torch.contiguous_format
    if model is not None and not _runs_channels_last(model, x):
        return torch.contiguous_format
    return torch.channels_last


_CHANNELS_LAST: "weakref.WeakKeyDictionary[nn.Module, bool]" = weakref.WeakKeyDictionary()
_LAYOUT_CHECK = threading.local()   # .active: this thread is running the layout check


@contextlib.contextmanager
def count_passes(model: nn.Module) -> Iterator[list]:
    """``with count_passes(model) as sizes:`` records the batch size of every forward pass of ``model``
    made in the block (a list, filled as the passes run), not counting the one-example layout check the
    package makes the first time it meets a model (:func:`fast_layout`): what a method itself costs."""
    sizes: list = []

    def record(module, args):
        if not getattr(_LAYOUT_CHECK, "active", False):
            sizes.append(args[0].shape[0] if args and isinstance(args[0], torch.Tensor) and args[0].ndim else 1)

    handle = model.register_forward_pre_hook(record)
    try:
        yield sizes
    finally:
        handle.remove()


def _runs_channels_last(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``model`` runs on a channels-last copy of x's first example (no grad), remembered per
    model. A model that fails in both layouts is not remembered: the method's own call reports why."""
    try:
        known = _CHANNELS_LAST.get(model)
    except TypeError:                      # a model class that is not hashable: ask every time
        known = None
    if known is not None:
        return known
    one = x[:1].detach()
    _LAYOUT_CHECK.active = True    # not one of the method's passes (count_passes)
    try:
        with torch.no_grad():      # on copies: a model may change its input in place
            try:
                model(one.clone(memory_format=torch.channels_last))
                known = True
            except RuntimeError:
                try:
                    model(one.clone(memory_format=torch.contiguous_format))
                except Exception:
                    return False
                known = False
    finally:
        _LAYOUT_CHECK.active = False
    with contextlib.suppress(TypeError):
        _CHANNELS_LAST[model] = known
    return known


def resolve_layer(model: nn.Module, layer) -> nn.Module:
    """A layer of ``model`` given as the module itself or its dotted name (``"features.8"``, ``"layer4"``)."""
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n]
            raise ValueError(f"layer {layer!r} is not in the model; its layers are named "
                             f"{', '.join(names[:12])}{', ...' if len(names) > 12 else ''}") from None
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError(f"layer {type(layer).__name__} is not a module of the model")
        return layer
    raise TypeError(f"layer must be a module of the model or its dotted name, got {type(layer).__name__}")


@contextlib.contextmanager
def layer_outputs(layers):
    """Record the output of each of ``layers`` during the forward passes inside the block.

    Yields a dict {layer: [outputs, one per call]}. The model continues with a copy of each output, so
    the recorded tensor is the layer's own output even when an in-place operation (an in-place ReLU)
    follows: the gradient with respect to it is the gradient with respect to the layer's output.
    The hooks are removed on leaving the block, whatever happens.
    """
    recorded = {layer: [] for layer in layers}

    def record(module, args, output):
        recorded[module].append(output)
        return output.clone()

    handles = [layer.register_forward_hook(record) for layer in recorded]
    try:
        yield recorded
    finally:
        for handle in handles:
            handle.remove()
