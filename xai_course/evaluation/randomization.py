"""Model-parameter randomisation (Adebayo et al., 2018, "Sanity Checks for Saliency Maps"; lab 16).

An explanation that is meant to explain *the model* must change when the model's learned weights are
destroyed. :func:`randomized_models` makes the destroyed models: copies of a trained network whose
layers are re-initialised from the top (output) layer down,

- ``order="cascading"``: copy :math:`k` has the top :math:`k` layers re-initialised (the first only the
  output layer, the last every layer);
- ``order="independent"``: copy :math:`k` has only the :math:`k`-th layer from the top re-initialised.

A *layer* is a module that owns parameters itself (``Conv2d``, ``Linear``, ``BatchNorm2d``, ...), in the
order the model registers them (``model.named_modules()``; for a plain sequential model that is the
forward order). A layer is re-initialised by its own ``reset_parameters()`` (the initialisation it was
built with; for BatchNorm that also resets the running statistics), or, for a custom module without
one, by drawing each of its parameters from a normal distribution with the parameter's own standard
deviation (a constant parameter, such as a gain of ones, with its absolute mean; zeros stay zeros).
A parameter shared by several modules (tied weights) belongs to its first owner: it is listed and
re-initialised once, with that layer.

Reproducible and hygienic: layer ``i`` (in registration order) is re-initialised under
``torch.manual_seed(layer_seeds(seed, n)[i])`` (seeds drawn from ``seed``, so that no layer's new
weights repeat the initialisation a model built after ``torch.manual_seed(seed)`` already has) inside
``torch.random.fork_rng``, so the same ``seed`` gives the same
copies, a layer gets the same new weights in both orders, and the global random state is left as it
was. The original model is never yielded and never changed (parameters, buffers, train/eval mode,
``requires_grad`` flags); each yielded model is a fresh deep copy that keeps the original's mode.
"""
from __future__ import annotations

import copy
from numbers import Integral
from typing import Iterator, List, Optional, Tuple

import torch
from torch import nn

ORDERS = ("cascading", "independent")


def parameter_layers(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``[(name, module)]`` of the modules that own parameters, in registration order (bottom first).

    A parameter shared by several modules (tied weights) belongs to its first owner only: a module
    whose own parameters all belong to earlier modules is not a layer, so a shared tensor is listed,
    and re-initialised, once."""
    return _ownership(model)[0]


def _ownership(model: nn.Module) -> tuple:
    """One walk of the modules: :func:`parameter_layers`, and ``{layer name: names of its own parameters
    that belong to an earlier layer}`` (tied weights, which its re-initialisation keeps)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    layers, shared, seen = [], {}, set()
    for name, m in model.named_modules():
        own = dict(m.named_parameters(recurse=False))
        shared[name] = {k for k, p in own.items() if id(p) in seen}
        if len(shared[name]) < len(own):
            layers.append((name, m))
        seen.update(id(p) for p in own.values())
    return layers, shared


def _reinitialise(module: nn.Module, seed: int, keep=()) -> None:
    """Re-initialise ``module``'s own parameters under ``seed``; the global
    random state is left as it was (fork_rng). ``keep``: names of its own
    parameters to leave as they are (those it shares with an earlier layer)."""
    devices = sorted({p.device.index or 0 for p in module.parameters()
                      if p.device.type == "cuda"})
    own = dict(module.named_parameters(recurse=False))
    kept = {k: own[k].detach().clone() for k in keep}
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.random.default_generator.manual_seed(seed)  # the CPU's
        for d in devices:
            with torch.cuda.device(d):
                torch.cuda.manual_seed(seed)
        if callable(getattr(module, "reset_parameters", None)):
            module.reset_parameters()  # the layer's own initialisation
        else:
            for k, p in own.items():  # a custom layer: a draw at its scale
                if k in kept:
                    continue
                p_ = p.float()
                std = float(p_.std() if p.numel() > 1 else p_.abs().max())
                scale = std if std > 0 else float(p_.mean().abs())
                p.normal_(0.0, scale) if scale > 0 else p.zero_()
        for k, value in kept.items():  # tied weights: the earlier owner's
            own[k].copy_(value)


def randomized_models(model: nn.Module, order: str = "cascading",
                      seed: Optional[int] = None, copies: bool = True) -> Iterator[Tuple[str, nn.Module]]:
    """Yield ``(layer_name, model copy)`` with parameters re-initialised from the top layer down.

    model: the trained ``nn.Module``; left untouched. order: ``"cascading"`` (copy k has the top k
    layers re-initialised, the first only the output layer) or ``"independent"`` (copy k has only the
    k-th layer from the top re-initialised). seed: an int for reproducible copies (layer i in
    registration order is re-initialised under ``torch.manual_seed(layer_seeds(seed, n)[i])``,
    inside ``fork_rng``); ``None`` draws a fresh one. ``layer_name`` is the name in ``model.named_modules()``
    of the layer last re-initialised. The number of pairs is the number of layers with parameters.
    ``copies=False`` yields one working copy each time, changed in place for the next pair (no copy
    per layer; for a loop that uses each model at once and keeps none, as the sanity-check tests do).
    Adebayo et al., NeurIPS 2018; lab 16 of the course.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if seed is None:
        seed = int(torch.Generator().seed() % 2**62)
    elif isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed < 2**62:
        raise ValueError(f"seed must be None or an int in [0, 2**62), got {seed!r}")
    seed = int(seed)                      # a numpy integer too
    layers, shared = _ownership(model)
    if not layers:
        raise ValueError("model has no layers with parameters: there is nothing to randomise")
    seeds = dict(zip([name for name, _ in layers], layer_seeds(seed, len(layers))))
    return _generate(model, [name for name, _ in layers][::-1], seeds, order, copies, shared)


def layer_seeds(seed: int, count: int) -> List[int]:
    """The seeds under which the ``count`` layers (registration order) are re-initialised."""
    return torch.randint(2**62, (count,), generator=torch.Generator().manual_seed(seed)).tolist()


def _generate(model, top_down, seeds, order, copies=True, shared=None):
    """Yield (name, model) for the layers named in top_down (top first): a
    fresh copy each time, or (``copies=False``, for callers that use each
    model once and keep none) one working copy changed from step to step.
    shared: {layer: its parameters tied to an earlier layer's}, kept."""
    working = copy.deepcopy(model)
    previous = None
    for name in top_down:
        if order == "independent" and previous is not None:
            if copies:                  # start from the original again
                working = copy.deepcopy(model)
            else:                       # undo the last layer's change
                original = model.get_submodule(previous).state_dict()
                working.get_submodule(previous).load_state_dict(original)
        _reinitialise(working.get_submodule(name), seeds[name],
                      (shared or {}).get(name, ()))
        fresh = copies and order == "cascading"
        yield name, copy.deepcopy(working) if fresh else working
        previous = name


def _explainer(method):
    from ..attribution import METHODS

    if callable(method):
        return method
    if method not in METHODS:
        raise ValueError(f"method must be a callable or one of {sorted(METHODS)}, got {method!r}")
    return METHODS[method]


def model_randomization_test(model: nn.Module, inputs: torch.Tensor, target, method, order: str = "cascading",
                             seed: Optional[int] = None, measures=None, options: Optional[dict] = None,
                             return_maps: bool = False, reference: Optional[torch.Tensor] = None) -> dict:
    """Adebayo et al.'s model-parameter randomisation test: explain ``inputs`` with ``method`` on the
    trained ``model`` and on each of :func:`randomized_models`, and compare the maps.

    method: a name in ``xai_course.attribution.METHODS`` or a function ``(model, inputs, target,
    **options)``. Returns ``{"layers": [names, top first], "scores": {measure: (layers, N)}}`` with the
    measures of :func:`~xai_course.evaluation.similarity.map_similarities` (default: all four), and
    ``"maps"`` ``(1 + layers, N, C, H, W)`` (the trained model's first) if ``return_maps``.
    ``reference``: the trained model's maps, if already computed (saves one explanation).
    """
    from .similarity import MEASURES, map_similarities

    explain, options = _explainer(method), dict(options or {})
    measures = MEASURES if measures is None else tuple(measures)
    if reference is None:
        reference = explain(model, inputs, target, **options).detach()
    layers, scores, maps = [], {m: [] for m in measures}, [reference]
    for name, randomized in randomized_models(model, order, seed, copies=False):  # each used once, here
        a = explain(randomized, inputs, target, **options).detach()
        for m, value in map_similarities(reference, a, measures).items():
            scores[m].append(value)
        layers.append(name)
        if return_maps:
            maps.append(a)
    result = {"layers": layers, "scores": {m: torch.stack(v) for m, v in scores.items()}}
    if return_maps:
        result["maps"] = torch.stack(maps)
    return result


def data_randomization_test(model: nn.Module, random_model: nn.Module, inputs: torch.Tensor, target, method,
                            measures=None, options: Optional[dict] = None,
                            reference: Optional[torch.Tensor] = None) -> dict:
    """Adebayo et al.'s data-randomisation test: ``{measure: (N,)}``, the similarity of ``method``'s maps
    of ``model`` (trained on the true labels) and of ``random_model`` (the same architecture trained on
    permuted labels) for the same inputs and target (``reference``: ``model``'s maps, if computed)."""
    from .similarity import MEASURES, map_similarities

    explain, options = _explainer(method), dict(options or {})
    a = explain(model, inputs, target, **options).detach() if reference is None else reference
    b = explain(random_model, inputs, target, **options).detach()
    return map_similarities(a, b, MEASURES if measures is None else tuple(measures))
