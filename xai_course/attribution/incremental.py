"""Incremental inference for masked evaluation (chapter 12): rerun only what a local change reaches.

An occluded copy of an image differs from the image in one window. A convolution's output changes only
where its receptive field meets the change, so the first layers of a CNN need to be recomputed only on
a box around the window, growing by the kernel's reach at every layer; outside the box every
activation equals the unperturbed image's, computed once. This is KRYPTON's idea (Nakandala, Kumar and
Papakonstantinou, "Incremental and Approximate Inference for Faster Occlusion-based Deep CNN
Explanations", SIGMOD 2019), done exactly: the results are the model's own up to float32 rounding
(a box is convolved on its own, not as part of the whole image, so sums may be taken in another order).

:func:`plan` traces the model with ``torch.fx`` and runs it once on the unperturbed inputs, keeping
every activation. :meth:`Plan.run` then evaluates a batch of copies, each given as a patch of the
input and the top-left corner of the box it covers:

- convolutions, max and average pooling compute the output box the change can reach, from a crop of
  their input (the unperturbed activation with the copy's patch pasted in, zero or -inf outside the
  image as their padding);
- elementwise layers (activations, BatchNorm in eval mode, dropout in eval mode) map the patch;
- a sum of two local values works on the union of their boxes;
- everything else (flattening, global pooling, linear layers) and any box covering more than
  :data:`DENSE_FROM` of its map runs as the model would, on full copies assembled from the kept
  activations and the patches.

A model that cannot be traced, that has hooks or a ``__call__``/instance ``forward`` of its own, whose
forward pass sets attributes (tracing would leave proxies in them) or modifies a value that something
else still reads gets no plan (``None``), and the caller evaluates it as a black box. The unperturbed
pass runs on a copy of the inputs, outside inference mode (its tensors have no version counters).
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import fx, nn

# A box covering at least this share of its map is cheaper to run densely (the crops and pastes
# around a local convolution cost more than the work they save).
DENSE_FROM = 0.5

ELEMENTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
                       nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Identity,
                       nn.Dropout, nn.Dropout2d)
ELEMENTWISE_FUNCTIONS = (torch.relu, F.relu, torch.sigmoid, torch.tanh, F.silu, F.gelu, F.leaky_relu, F.elu)
ELEMENTWISE_METHODS = ("relu", "sigmoid", "tanh")
SUMS = (operator.add, operator.iadd, torch.add)


@dataclass
class Local:
    """The value of one node for a batch of copies: ``base[example]`` except on a box per copy.

    ``patch`` (B, C, h, w) holds the box of every copy; ``top``/``left`` (B,) its corner in the map.
    """
    patch: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor


def _pair(value) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _reach(corner: torch.Tensor, size: int, extent: int, kernel: int, stride: int, padding: int,
           dilation: int) -> Tuple[torch.Tensor, int]:
    """Outputs of a sliding window op (one dimension) that a change on [corner, corner + size) reaches:
    the corner and the size of a box holding them all, placed inside the output's ``extent``."""
    span = (kernel - 1) * dilation
    out = min(extent, -(-(size + span) // stride))           # ⌈(size + span) / stride⌉ positions at most
    first = -((span - padding - corner) // stride)          # ⌈(corner + padding - span) / stride⌉
    return first.clamp(0, extent - out), out


def crop(values: torch.Tensor, index: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: int,
         width: int) -> torch.Tensor:
    """The boxes [top, top + height) x [left, left + width) (inside the map) of maps ``values[index]``
    (``values`` (M, C, H, W) in any layout): channels-last (B, C, height, width), one gather."""
    windows = values.permute(0, 2, 3, 1).unfold(1, height, 1).unfold(2, width, 1)   # (M, H', W', C, h, w)
    return windows.permute(0, 1, 2, 4, 5, 3)[index, top, left].contiguous().permute(0, 3, 1, 2)


def paste(target: torch.Tensor, top: torch.Tensor, left: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``target`` (B, C, R, S), channels-last, with ``value`` (B, C, h, w) written into it in place at each
    copy's (``top``, ``left``) (relative to the target); the part of a value outside the target is
    dropped (it reaches no output that the target is read for)."""
    batch, channels, rows, cols = target.shape
    height, width = value.shape[2:]
    r = top[:, None, None] + torch.arange(height, device=top.device)[:, None]
    c = left[:, None, None] + torch.arange(width, device=top.device)
    at = ((torch.arange(batch, device=top.device)[:, None, None] * rows + r) * cols + c).view(-1)
    source = value.permute(0, 2, 3, 1).reshape(-1, channels)
    inside = ((r >= 0) & (r < rows) & (c >= 0) & (c < cols)).view(-1)
    if not bool(inside.all()):
        at, source = at[inside], source[inside]
    target.permute(0, 2, 3, 1).view(-1, channels).index_copy_(0, at, source)
    return target


def materialize(base: torch.Tensor, value: Local, example: torch.Tensor) -> torch.Tensor:
    """The copies' full values (B, C, H, W), channels-last: the kept activations, each patch pasted in."""
    return paste(base[example].contiguous(memory_format=torch.channels_last), value.top, value.left, value.patch)


def _is(module: nn.Module, classes) -> bool:
    """``module`` is one of ``classes`` and runs that class's own forward (a subclass that overrides
    ``forward``, a weight-standardised convolution say, or a module given its own ``forward`` as an
    attribute, is not known to be local)."""
    classes = classes if isinstance(classes, tuple) else (classes,)
    if not _plain_call(module):
        return False
    return any(isinstance(module, c) and type(module).forward is c.forward for c in classes)


def _plain_call(module: nn.Module) -> bool:
    """Calling ``module`` runs its class's ``forward`` (no ``__call__`` of its own, no ``forward``
    set on the instance): what ``torch.fx`` traces and what the local rules read."""
    return type(module).__call__ is nn.Module.__call__ and "forward" not in vars(module)


def _window_op(module: nn.Module):
    """(kernel, stride, padding, dilation, outside, function) of a convolution or pooling the box can
    pass, else None."""
    if _is(module, nn.Conv2d):
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            return None
        return (module.kernel_size, module.stride, module.padding, module.dilation, 0.0,
                lambda crop: F.conv2d(crop, module.weight, module.bias, module.stride, 0, module.dilation,
                                      module.groups))
    if _is(module, nn.MaxPool2d) and not module.ceil_mode and not module.return_indices:
        kernel, stride = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
        return (kernel, stride, _pair(module.padding), _pair(module.dilation), -math.inf,
                lambda crop: F.max_pool2d(crop, kernel, stride, 0, module.dilation))
    if _is(module, nn.AvgPool2d) and not module.ceil_mode and (
            module.count_include_pad or _pair(module.padding) == (0, 0)):
        kernel, stride = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
        return (kernel, stride, _pair(module.padding), (1, 1), 0.0,
                lambda crop: F.avg_pool2d(crop, kernel, stride, 0, False, True, module.divisor_override))
    return None


def _elementwise(module: nn.Module) -> bool:
    if _is(module, nn.BatchNorm2d):       # eval mode with running statistics: per channel affine
        return not module.training and module.running_mean is not None
    return _is(module, ELEMENTWISE_MODULES) and not (isinstance(module, (nn.Dropout, nn.Dropout2d))
                                                     and module.training)


class Plan:
    """A traced model with its activations on the unperturbed inputs; see the module's docstring."""

    def __init__(self, graph: fx.GraphModule, inputs: torch.Tensor):
        self.graph = graph
        self.modules = dict(graph.named_modules())
        self.nodes = list(graph.graph.nodes)
        self.base: Dict[fx.Node, torch.Tensor] = {}       # the kept activations (N, C, H, W)
        self.shapes: Dict[fx.Node, torch.Size] = {}        # the shape of every 4-d activation
        self.varying = set()
        self._pads = {}
        self._run_base(inputs)

    # -- the unperturbed pass
    def _run_base(self, inputs: torch.Tensor) -> None:
        env, versions = {}, {}
        for node in self.nodes:
            if node.op == "placeholder":
                env[node] = inputs.clone()     # a forward pass may change its input in place: not the caller's
                self.varying.add(node)
            elif node.op == "output":
                continue
            else:
                env[node] = self._eager(node, env)
                if any(a in self.varying for a in node.all_input_nodes):
                    self.varying.add(node)
            value = env[node]
            if node in self.varying and isinstance(value, torch.Tensor):
                versions[node] = (value, value._version)
                if value.ndim == 4:
                    self.shapes[node] = value.shape
                    # kept where a user reads more than the patch (a crop, a sum, a full copy); a node
                    # read only position by position needs its patch alone
                    if any(self._pointwise(user) is None for user in node.users):
                        self.base[node] = value.clone(memory_format=torch.channels_last)
        for node, (value, version) in versions.items():
            if value._version != version and len(node.users) > 1:
                # an operation changed this value in place while others still read it: the graph's
                # values are not functions of their inputs, which the local pass assumes
                raise _Refused(f"{node.name} is modified in place and read elsewhere")
            if value._version == version and node in self.base and not torch.equal(value, self.base[node]):
                # changed without a version bump (through ``.data``): the kept copy is not what was read
                # (or NaN in it, which equals nothing: a black box then, to be safe)
                raise _Refused(f"{node.name} is modified in place through .data")

    def _eager(self, node: fx.Node, env: dict):
        args = fx.node.map_arg(node.args, env.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, env.__getitem__)
        if node.op == "call_module":
            return self.modules[node.target](*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        if node.op == "get_attr":
            value = self.graph
            for name in node.target.split("."):
                value = getattr(value, name)
            return value
        raise _Refused(f"cannot run node {node.op} {node.target}")

    # -- the copies
    def run(self, example: torch.Tensor, patch: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
            record: Optional[dict] = None):
        """The model's output on copies of ``inputs[example]`` (B,) that equal them except on the box
        of ``patch`` (B, C, h, w) at (``top``, ``left``). ``record``: a dict that receives, per node
        name, the spatial size (height, width) of the box it computed, or None where it ran on full copies."""
        env, dense = {}, {}

        def full(node):
            value = env[node]
            if isinstance(value, Local):
                if node not in dense:
                    dense[node] = materialize(self.base[node], value, example)
                return dense[node]
            return value

        for node in self.nodes:
            if node.op == "placeholder":
                env[node] = Local(patch.contiguous(memory_format=torch.channels_last), top, left)
                continue
            if node.op == "output":
                return fx.node.map_arg(node.args[0], full)
            value = None
            if any(isinstance(env.get(a), Local) for a in node.all_input_nodes):
                value = self._local(node, env, example)
            if value is None:
                value = self._eager(node, {a: full(a) for a in node.all_input_nodes})
            env[node] = value
            if record is not None:
                record[node.name] = tuple(value.patch.shape[2:]) if isinstance(value, Local) else None
        raise _Refused("the graph has no output")

    def _pointwise(self, node: fx.Node):
        """For a node that maps its one input position by position (an activation, BatchNorm in eval
        mode, dropout in eval mode): that map, for a patch; else None."""
        inputs = node.all_input_nodes
        if len(inputs) != 1 or not node.args or node.args[0] is not inputs[0]:
            return None
        rest, kwargs = node.args[1:], node.kwargs
        if node.op == "call_module" and not rest and not kwargs and _elementwise(self.modules[node.target]):
            return self.modules[node.target]
        if node.op == "call_function" and node.target in ELEMENTWISE_FUNCTIONS:
            return lambda patch: node.target(patch, *rest, **kwargs)
        if node.op == "call_method" and node.target in ELEMENTWISE_METHODS:
            return lambda patch: getattr(patch, node.target)(*rest, **kwargs)
        return None

    def _local(self, node: fx.Node, env: dict, example: torch.Tensor) -> Optional[Local]:
        """The node's value as a Local, or None where it must run on full copies."""
        inputs = node.all_input_nodes
        pointwise = self._pointwise(node)
        if pointwise is not None:
            value = env[inputs[0]]
            return Local(pointwise(value.patch), value.top, value.left)
        module = self.modules.get(node.target) if node.op == "call_module" else None
        if (module is not None and len(node.args) == 1 and not node.kwargs and len(inputs) == 1
                and _window_op(module) is not None):
            return self._window(node, module, env[inputs[0]], example)
        if (node.op == "call_function" and node.target in SUMS and len(node.args) == 2 and not node.kwargs
                and all(isinstance(a, fx.Node) and isinstance(env[a], Local)
                        and self.shapes[a] == self.shapes[node] for a in node.args)):
            return self._sum(node, example, env)
        return None

    def _window(self, node, module, value: Local, example) -> Optional[Local]:
        kernel, stride, padding, dilation, outside, function = _window_op(module)
        extent = self.shapes[node][2:]
        height, width = value.patch.shape[2:]
        top, rows = _reach(value.top, height, extent[0], kernel[0], stride[0], padding[0], dilation[0])
        left, cols = _reach(value.left, width, extent[1], kernel[1], stride[1], padding[1], dilation[1])
        if rows * cols >= DENSE_FROM * extent[0] * extent[1]:
            return None
        source = node.all_input_nodes[0]
        # the input box the output box reads, in the map padded as the operation pads it
        height, width = ((n - 1) * s + (k - 1) * d + 1 for n, s, k, d in zip((rows, cols), stride, kernel, dilation))
        top_in, left_in = top * stride[0], left * stride[1]
        window = crop(self._padded(source, padding, outside), example, top_in, left_in, height, width)
        window = paste(window, value.top + padding[0] - top_in, value.left + padding[1] - left_in, value.patch)
        return Local(function(window), top, left)

    def _padded(self, node: fx.Node, padding: Tuple[int, int], outside: float) -> torch.Tensor:
        """The node's kept activations padded by ``padding`` with ``outside`` (made once, then kept)."""
        key = (node, tuple(padding), outside)
        if key not in self._pads:
            self._pads[key] = F.pad(self.base[node], (padding[1],) * 2 + (padding[0],) * 2, value=outside)
        return self._pads[key]

    def _sum(self, node, example, env) -> Optional[Local]:
        (a, b), extent = node.args, self.shapes[node][2:]
        u, v = env[a], env[b]
        if (u.patch.shape == v.patch.shape and torch.equal(u.top, v.top) and torch.equal(u.left, v.left)):
            return Local(u.patch + v.patch, u.top, u.left)
        corner, size = [], []
        for d, (x, y) in enumerate(((u.top, v.top), (u.left, v.left))):
            start = torch.minimum(x, y)
            end = torch.maximum(x + u.patch.shape[2 + d], y + v.patch.shape[2 + d])
            length = int((end - start).max())
            corner.append(start.clamp(max=extent[d] - length))
            size.append(length)
        if size[0] * size[1] >= DENSE_FROM * extent[0] * extent[1]:
            return None
        parts = [paste(crop(self.base[n], example, corner[0], corner[1], *size), w.top - corner[0],
                       w.left - corner[1], w.patch) for n, w in ((a, u), (b, v))]
        return Local(parts[0] + parts[1], corner[0], corner[1])


class _Refused(Exception):
    """The model cannot be planned; the caller evaluates it as a black box."""


def has_hooks(model: nn.Module) -> bool:
    """Whether any forward hook would run that a traced graph skips."""
    from torch.nn.modules import module as module_state
    if module_state._global_forward_hooks or module_state._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def batch_statistics(model: nn.Module) -> bool:
    """Whether a BatchNorm normalises by the statistics of its batch even in eval mode (it keeps no
    running ones): every output then depends on the other copies in the batch, and the black box's
    batches (another size) are the reference."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None for m in model.modules())


def plan(model: nn.Module, inputs: torch.Tensor) -> Optional[Plan]:
    """A :class:`Plan` for ``model`` (in eval mode) on image ``inputs`` (N, C, H, W), or None where the
    model cannot be traced or run piecewise (then evaluate it as a black box). Runs without grad."""
    if inputs.ndim != 4 or has_hooks(model) or not _plain_call(model) or batch_statistics(model):
        return None
    state = _attributes(model)
    try:
        graph = fx.symbolic_trace(model)
    except Exception:       # any model fx cannot trace (data-dependent control flow, ...) is a black box
        graph = None
    if _attributes(model) != state:
        # the forward pass sets attributes (``self.features = h``, a call counter): tracing stored
        # proxies in them, and the graph would not replay it; undo it and run the model itself
        _restore(state)
        return None
    placeholders = [] if graph is None else [n for n in graph.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1 or placeholders[0].target.startswith("*"):     # (``forward(self, *xs)``: a tuple)
        return None
    try:
        # outside inference mode (the caller's, or inputs made in it): the version counters that
        # reveal in-place changes exist only on normal tensors
        with torch.inference_mode(False), torch.no_grad():     # (in this order: the first enables grad)
            return Plan(graph, inputs)
    except _Refused:
        return None


class _Same:
    """Compares by identity (the attributes of a module before and after tracing)."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return self.value is other.value


def _attributes(model: nn.Module) -> list:
    """Every module's attributes, parameters, buffers and submodules, compared by identity."""
    def named(mapping):
        return {k: _Same(v) for k, v in mapping.items()}
    return [(m, named(vars(m)), named(m._parameters), named(m._buffers), named(m._modules)) for m in model.modules()]


def _restore(state: list) -> None:
    for module, attributes, parameters, buffers, modules in state:
        for mapping, saved in ((vars(module), attributes), (module._parameters, parameters),
                               (module._buffers, buffers), (module._modules, modules)):
            mapping.clear()
            mapping.update({k: v.value for k, v in saved.items()})
