"""SmoothGrad, SmoothGrad² and VarGrad (chapter 5): any method averaged over noisy copies of the input.

Smilkov, Thorat, Kim, Viégas & Wattenberg (2017), "SmoothGrad: removing noise by adding noise":

    M̂_c(x) = 1/n Σ_{s=1}^n M_c(x + ε_s),      ε_s ~ N(0, σ²),   σ = noise · (x_max - x_min),

with the noise level given, as in the paper, as a fraction of the input's range (per example). Captum's
``NoiseTunnel`` takes the absolute σ (``stdevs``) instead. ``kind`` chooses the aggregate of the n maps:
``"smoothgrad"`` the mean, ``"smoothgrad_sq"`` the mean of squares (SG²), ``"vargrad"`` the variance
(Adebayo et al., 2018), mean(M²) - mean(M)².
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from ._core import METHODS, Target, check_call, explaining, register
from .integrated_gradients import make_generator, range_noise

KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")


@register("smoothgrad")
def smoothgrad(model: nn.Module, inputs: torch.Tensor, target: Target, method: Union[str, callable] = "saliency",
               samples: int = 50, noise: float = 0.15, kind: str = "smoothgrad", seed: Optional[int] = None,
               batch_size: Optional[int] = None, **method_options) -> torch.Tensor:
    """SmoothGrad of ``method`` (a name in METHODS or an attribution function) over ``samples`` noisy copies.

    ``noise``: σ as a fraction of each example's range (the paper's 0.15 by default). ``seed``: draws
    from a private generator (None: torch's global one). ``batch_size``: at most this many noisy inputs
    per call of ``method`` (default: all ``samples × N`` in one call). ``method_options`` go to
    ``method``; a tensor option with one row per example (a baseline) is repeated for the copies.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    if isinstance(method, str):
        if method not in METHODS or method == "smoothgrad":
            raise ValueError(f"method must name an attribution method ({', '.join(sorted(set(METHODS) - {'smoothgrad'}))}), "
                             f"got {method!r}")
        method = METHODS[method]
    elif not callable(method):
        raise TypeError(f"method must be a method's name or an attribution function, got {type(method).__name__}")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or noise < 0:
        raise ValueError(f"noise must be a number >= 0 (a fraction of each input's range), got {noise!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    model, inputs, target = check_call(model, inputs, target)
    n = inputs.shape[0]
    # example-major order (x_1 + ε_11, ..., x_1 + ε_1s, x_2 + ε_21, ...) as Captum: equal seeds, equal draws
    noisy = (inputs.detach().unsqueeze(1) + range_noise(inputs, float(noise), samples,
                                                        make_generator(seed, inputs.device))).flatten(0, 1)
    targets = target.repeat_interleave(samples)
    options = {k: v.repeat_interleave(samples, 0) if _per_example(v, inputs) else v for k, v in method_options.items()}
    chunk = batch_size or len(noisy)
    with explaining(model):  # one train-mode warning, not one per chunk
        maps = torch.cat([method(model, noisy[i:i + chunk], targets[i:i + chunk],
                                 **{k: v[i:i + chunk] if _per_example(method_options[k], inputs) else v
                                    for k, v in options.items()})
                          for i in range(0, len(noisy), chunk)])
    maps = maps.view(n, samples, *maps.shape[1:])
    if kind == "smoothgrad":
        return maps.mean(1)
    if kind == "smoothgrad_sq":
        return (maps * maps).mean(1)
    return (maps * maps).mean(1) - maps.mean(1) ** 2


def _per_example(option, inputs) -> bool:
    """An option holding one row per example (a baseline tensor), which follows its example's copies."""
    return isinstance(option, torch.Tensor) and option.ndim == inputs.ndim and option.shape[0] == inputs.shape[0] > 1
