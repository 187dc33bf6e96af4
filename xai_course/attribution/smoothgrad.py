"""SmoothGrad, SmoothGrad² and VarGrad (chapter 5): any method averaged over noisy copies of the input.

Smilkov, Thorat, Kim, Viégas & Wattenberg (2017), "SmoothGrad: removing noise by adding noise":

    M̂_c(x) = 1/n Σ_{s=1}^n M_c(x + ε_s),      ε_s ~ N(0, σ²),   σ = noise · (x_max - x_min),

with the noise level given, as in the paper, as a fraction of the input's range (per example). Captum's
``NoiseTunnel`` takes the absolute σ (``stdevs``) instead. ``kind`` chooses the aggregate of the n maps:
``"smoothgrad"`` the mean, ``"smoothgrad_sq"`` the mean of squares (SG²), ``"vargrad"`` the variance
(Adebayo et al., 2018), mean(M²) - mean(M)².

The wrapper's own options (``method``, ``samples``, ``noise``, ``kind``, ``seed``, ``batch_size``) and the
wrapped method's (``options``, a dict) are kept apart, so they cannot collide: smoothed IG chooses its
own quadrature and batch size with ``options=dict(method="riemann_middle", batch_size=64)``. Nothing is
guessed from shapes: an option with one row per example (a per-example IG baseline) follows its
example's noisy copies only when it is named in ``per_example``; every other option reaches every call
of the method as it is (a DeepSHAP background set of N references stays one set of N references).
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from ._core import (METHODS, Target, batches, check_batch_size, check_call, check_int, check_number, explaining,
                    make_generator, register)
from .integrated_gradients import range_noise

KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")


@register("smoothgrad")
def smoothgrad(model: nn.Module, inputs: torch.Tensor, target: Target, method: Union[str, Callable] = "saliency",
               samples: int = 50, noise: float = 0.15, kind: str = "smoothgrad", seed: Optional[int] = None,
               batch_size: Optional[int] = None, options: Optional[Mapping] = None,
               per_example: Sequence[str] = (), **misplaced) -> torch.Tensor:
    """SmoothGrad of ``method`` (a name in METHODS or an attribution function) over ``samples`` noisy copies.

    ``noise``: σ as a fraction of each example's range (the paper's 0.15 by default). ``seed``: draws
    from a private generator (None: torch's global one). ``batch_size``: at most this many noisy inputs
    per call of ``method`` (default: all ``samples × N`` in one call). ``options``: the keyword options
    of ``method`` (``{"abs": False}``, ``{"steps": 16, "baseline": "blurred"}``), given to every call.
    ``per_example``: the names of the ``options`` that hold one row per example (a tensor (N, ...)):
    each row is repeated for its example's copies.
    """
    if misplaced:
        names = ", ".join(sorted(misplaced))
        raise TypeError(f"smoothgrad got the option(s) {names}, which are not its own: options of the "
                        f"wrapped method go in options=dict(...), e.g. options={{{min(misplaced)!r}: ...}}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    if isinstance(method, str):
        if method not in METHODS or method == "smoothgrad":
            raise ValueError(f"method must name an attribution method ({', '.join(sorted(set(METHODS) - {'smoothgrad'}))}), "
                             f"got {method!r}")
        method = METHODS[method]
    elif not callable(method):
        raise TypeError(f"method must be a method's name or an attribution function, got {type(method).__name__}")
    samples = check_int(samples, "samples")
    noise = check_number(noise, "noise", meaning="a fraction of each input's range")
    batch_size = check_batch_size(batch_size)
    model, inputs, target = check_call(model, inputs, target)
    options, per_example = _check_options(options, per_example, inputs.shape[0])
    n = inputs.shape[0]
    # example-major order (x_1 + ε_11, ..., x_1 + ε_1s, x_2 + ε_21, ...) as Captum: equal seeds, equal draws
    noisy = (inputs.detach().unsqueeze(1) + range_noise(inputs, noise, samples,
                                                        make_generator(seed, inputs.device))).flatten(0, 1)
    targets = target.repeat_interleave(samples)
    rows = {k: options.pop(k).repeat_interleave(samples, 0) for k in per_example}  # row j: copy j's example
    with explaining(model):  # one train-mode warning, not one per batch
        maps = torch.cat([method(model, noisy[a:b], targets[a:b], **options, **{k: v[a:b] for k, v in rows.items()})
                          for a, b in batches(len(noisy), batch_size)])
    maps = maps.view(n, samples, *maps.shape[1:])
    if kind == "smoothgrad":
        return maps.mean(1)
    if kind == "smoothgrad_sq":
        return (maps * maps).mean(1)
    return (maps * maps).mean(1) - maps.mean(1) ** 2


def _check_options(options, per_example, n: int):
    """``options`` as a dict, and the names in ``per_example``, each a tensor option with ``n`` rows."""
    if options is None:
        options = {}
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise TypeError(f"options must be a dict of the wrapped method's keyword options, got {type(options).__name__}")
    if isinstance(per_example, str):
        per_example = (per_example,)
    per_example = tuple(per_example)
    for name in per_example:
        if name not in options:
            raise ValueError(f"per_example names {name!r}, which is not in options ({', '.join(options) or 'empty'})")
        value = options[name]
        if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != n:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"per_example option {name!r} must be a tensor with one row per example "
                             f"({n} rows), got {got}")
    return dict(options), per_example
