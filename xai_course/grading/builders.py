"""Models and functions that cross between the grader and the worker, as recipes (never as objects).

A model (``nn.Module``) is sent as a *recipe* that both processes know how to build, plus its
``state_dict`` as arrays and its train/eval flags:

- a model made only of the standard layers of :data:`LAYERS` (``nn.Sequential`` of Linear, Conv2d,
  BatchNorm, activations, pooling, ...) is described by its structure, read from the layers' attributes
  (so a test may change weights, buffers or ``eps`` after building it);
- any other model must have been made by a builder of :data:`BUILDERS` (``@builder("name")``), which
  tags it with ``_xai_recipe = (name, kwargs)``: the course models (``model``: ``xai_course.models``'
  ``spec(name).build()``), the toys (``saturating``, ``circle``).

Functions passed as arguments (an activation) are sent by name, from :data:`CALLABLES` only.
Return values that are models (``fold_batchnorm`` returns a Conv2d) come back the same way and are
rebuilt by the grader after a size check on the ``meta`` device. Imported by the worker: no solutions here.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

MAX_PARAMETERS = 20_000_000  # elements of a model that comes back from the worker

CALLABLES = {f"torch.{n}": getattr(torch, n) for n in (
    "relu", "tanh", "sigmoid", "exp", "log", "sin", "cos", "abs", "square", "sqrt", "softmax", "log_softmax")}
CALLABLES.update({f"torch.nn.functional.{n}": getattr(F, n) for n in (
    "relu", "tanh", "sigmoid", "softplus", "gelu", "elu", "leaky_relu", "silu", "softmax", "log_softmax")})

_INT, _TUPLE = (int,), (int, tuple)
# layer name -> (class, attributes passed back to the constructor; bias is True when the layer has one)
LAYERS = {
    "Linear": (nn.Linear, ("in_features", "out_features", "bias")),
    "Conv1d": (nn.Conv1d, ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                           "groups", "bias", "padding_mode")),
    "Conv2d": (nn.Conv2d, ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                           "groups", "bias", "padding_mode")),
    "BatchNorm1d": (nn.BatchNorm1d, ("num_features", "eps", "momentum", "affine", "track_running_stats")),
    "BatchNorm2d": (nn.BatchNorm2d, ("num_features", "eps", "momentum", "affine", "track_running_stats")),
    "ReLU": (nn.ReLU, ("inplace",)), "Tanh": (nn.Tanh, ()), "Sigmoid": (nn.Sigmoid, ()),
    "Softplus": (nn.Softplus, ("beta", "threshold")), "GELU": (nn.GELU, ("approximate",)),
    "ELU": (nn.ELU, ("alpha", "inplace")), "LeakyReLU": (nn.LeakyReLU, ("negative_slope", "inplace")),
    "SiLU": (nn.SiLU, ("inplace",)), "Identity": (nn.Identity, ()), "Dropout": (nn.Dropout, ("p", "inplace")),
    "Flatten": (nn.Flatten, ("start_dim", "end_dim")), "Softmax": (nn.Softmax, ("dim",)),
    "MaxPool2d": (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    "AvgPool2d": (nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")),
    "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d, ("output_size",)),
    "AdaptiveMaxPool2d": (nn.AdaptiveMaxPool2d, ("output_size",)),
}
_LAYER_OF = {cls: name for name, (cls, _) in LAYERS.items()}

BUILDERS = {}


def builder(name: str):
    """Register a model builder; the model it returns is tagged with its recipe ``(name, kwargs)``."""
    def wrap(fn):
        @functools.wraps(fn)
        def build(**kwargs):
            model = fn(**kwargs)
            model._xai_recipe = (name, dict(kwargs))
            return model
        BUILDERS[name] = build
        return build
    return wrap


@builder("model")
def course_model(name: str) -> nn.Module:
    """The architecture of a course model (``xai_course.models.spec(name).build()``); weights come with the state."""
    from xai_course import models

    return models.spec(name).build().eval()


@builder("saturating")
def saturating() -> nn.Module:
    from xai_course import models

    return models.Saturating().eval()


@builder("circle")
def circle() -> nn.Module:
    from xai_course import models

    return models.Circle().eval()


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(v, (int, float, bool)) for v in value):
        return {"$": "tuple", "v": list(value)}
    raise TypeError(f"layer attribute of type {type(value).__name__}")


def _unplain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict) and value.get("$") == "tuple" and isinstance(value.get("v"), list) and \
            len(value["v"]) <= 8 and all(isinstance(v, (int, float, bool)) for v in value["v"]):
        return tuple(value["v"])
    raise ValueError("bad layer attribute")


def structure(module: nn.Module):
    """The structure of a model made of standard layers, or None."""
    if type(module) is nn.Sequential:
        children = [structure(m) for m in module]
        return None if any(c is None for c in children) else {"type": "Sequential", "children": children}
    name = _LAYER_OF.get(type(module))
    if name is None:
        return None
    kwargs = {}
    for attr in LAYERS[name][1]:
        value = (getattr(module, "bias", None) is not None) if attr == "bias" else getattr(module, attr)
        kwargs[attr] = _plain(value)
    return {"type": name, "kwargs": kwargs}


def _build(spec, depth=0):
    if depth > 8 or not isinstance(spec, dict):
        raise ValueError("bad model structure")
    if spec.get("type") == "Sequential":
        children = spec.get("children")
        if not isinstance(children, list) or len(children) > 200:
            raise ValueError("bad Sequential")
        return nn.Sequential(*[_build(c, depth + 1) for c in children])
    if spec.get("type") not in LAYERS or not isinstance(spec.get("kwargs"), dict):
        raise ValueError(f"unknown layer {spec.get('type')!r}")
    cls, attrs = LAYERS[spec["type"]]
    kwargs = {k: _unplain(v) for k, v in spec["kwargs"].items() if k in attrs}
    return cls(**kwargs)


def encode_module(module: nn.Module, arrays: list) -> dict:
    """A model as ``{"recipe"|"structure", "state", "training"}`` (its tensors appended to ``arrays``)."""
    recipe = getattr(module, "_xai_recipe", None)
    if recipe is None:  # the course's toys are built without arguments: no builder needed in the tests
        from xai_course import models

        for cls, name in ((models.Circle, "circle"), (models.Saturating, "saturating")):
            if type(module) is cls:
                recipe = (name, {})
    out = {}
    if recipe is not None:
        out["recipe"] = [recipe[0], recipe[1]]
    else:
        spec = structure(module)
        if spec is None:
            raise TypeError(f"a model of class {type(module).__name__} has no recipe: build it with a builder of "
                            f"xai_course.grading.checks (random_mlp, random_cnn, load_model, ...) or only from "
                            f"standard torch.nn layers")
        out["structure"] = spec
    state = []
    for key, value in module.state_dict(keep_vars=False).items():
        arrays.append(value.detach().cpu().numpy().copy())
        state.append([key, len(arrays) - 1])
    out["state"] = state
    out["training"] = [m.training for m in module.modules()]
    return out


def decode_module(tree, array, trusted_recipes: bool = True) -> nn.Module:
    """Rebuild a model from :func:`encode_module`'s tree; ``array(i)`` gives the i-th array.

    ``trusted_recipes=False`` (the grader reading what a worker returned) accepts structures only."""
    if not isinstance(tree, dict) or not isinstance(tree.get("state"), list) or len(tree["state"]) > 2000:
        raise ValueError("bad model")
    if "recipe" in tree and trusted_recipes:
        name, kwargs = tree["recipe"]
        module = BUILDERS[name](**kwargs)
    elif "structure" in tree:
        with torch.device("meta"):
            probe = _build(tree["structure"])
        if sum(p.numel() for p in probe.state_dict().values()) > MAX_PARAMETERS:
            raise ValueError("the model is too large")
        module = _build(tree["structure"])
    else:
        raise ValueError("a model without a recipe")
    state = {}
    for pair in tree["state"]:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError("bad state")
        state[pair[0]] = torch.from_numpy(array(pair[1]))
    own = module.state_dict()
    if set(state) != set(own) or any(tuple(state[k].shape) != tuple(own[k].shape) for k in own):
        raise ValueError("the model's weights do not match its layers")
    module.load_state_dict({k: state[k].to(own[k].dtype) for k in own})
    flags = tree.get("training")
    modules = list(module.modules())
    if isinstance(flags, list) and len(flags) == len(modules):
        for m, flag in zip(modules, flags):
            m.training = bool(flag)
    return module
