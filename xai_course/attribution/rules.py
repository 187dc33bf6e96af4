"""The backward-rule engine: the gradient, with some operations' backward rule replaced (chapters 3, 11, 13).

Guided backprop, DeConvNet, DeepLIFT and LRP all compute "the gradient of the target logit with respect
to the input", except that chosen operations pass the signal back by another rule than the chain rule.
This module is that one mechanism; each method is a small table ``{operation: rule}`` on top of it:

    with backward_rules({"relu": GuidedReLU()}):
        grad = gradient_of_target(model, inputs, target)     # guided backprop

How it works. While the ``with`` block runs, a :class:`torch.overrides.TorchFunctionMode` sees every
call of a torch function. A call of an operation in the table (``F.relu``, ``torch.relu``,
``x.relu_()``, ``F.max_pool2d``, ...) is replaced by a custom :class:`torch.autograd.Function` whose
forward computes the same value and whose backward is the rule. Because the rule is attached to the
*call* (not to a module, as hooks are):

- a ReLU module used twice in one forward pass gets two independent rule applications;
- an in-place ReLU (``nn.ReLU(inplace=True)``, ``x.relu_()``) stays in place, and the rule still sees
  the input as it was before the operation;
- a functional ReLU (``F.relu(x)`` or ``torch.relu(x)`` in a ``forward``) is handled like a module.

Nothing is attached to the model: there are no hooks to forget, and leaving the block (also by an
exception) restores ordinary autograd. Operations a method declares it cannot handle (say a GELU under
DeepLIFT) raise a clear error instead of silently falling back to the gradient.

The block must contain the forward pass; the gradient may be taken inside or after it (the rules
are part of the graph the forward pass built). Inside a backward pass nothing is intercepted.

A rule is an object with ``backward(x, y, grad_y, f) -> grad_x``: the input ``x`` and output ``y`` of
the operation ``y = f(x)``, the signal ``grad_y`` arriving from above; it returns the signal passed
below. Rules that need more than one input (DeepLIFT's RevealCancel) override ``apply``.
"""
from __future__ import annotations

import inspect
from typing import Callable, Dict, Iterable, Mapping, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

Tensor = torch.Tensor


class Op(NamedTuple):
    """What a torch function is: an operation ``kind``, and whether it works in place."""

    kind: str
    inplace: bool


# Every spelling of the operations rules can replace. Methods name operations by kind.
OPERATIONS: Dict[Callable, Op] = {}
for _kind, _functions, _inplace_functions in [
    ("relu", (F.relu, torch.relu, Tensor.relu), (torch.relu_, Tensor.relu_, F.relu_)),
    ("sigmoid", (torch.sigmoid, Tensor.sigmoid, F.sigmoid), (torch.sigmoid_, Tensor.sigmoid_)),
    ("tanh", (torch.tanh, Tensor.tanh, F.tanh), (torch.tanh_, Tensor.tanh_)),
    ("elu", (F.elu,), (F.elu_,)),
    ("leaky_relu", (F.leaky_relu,), (F.leaky_relu_,)),
    ("softplus", (F.softplus,), ()),
    # (return_indices=True dispatches to the *_with_indices spellings)
    ("max_pool", (F.max_pool1d, F.max_pool2d, F.max_pool3d, F.max_pool1d_with_indices, F.max_pool2d_with_indices,
                  F.max_pool3d_with_indices), ()),
    ("linear", (F.linear,), ()),
    ("conv", (F.conv1d, F.conv2d, F.conv3d), ()),
    # nonlinear operations no rule table of the course handles: methods that need every
    # nonlinearity replaced refuse them (see ``refuse``)
    ("gelu", (F.gelu,), ()), ("silu", (F.silu,), ()), ("softmax", (F.softmax, torch.softmax, Tensor.softmax), ()),
    ("log_softmax", (F.log_softmax, torch.log_softmax, Tensor.log_softmax), ()),
    ("hardtanh", (F.hardtanh, F.relu6), ()), ("mish", (F.mish,), ()), ("hardswish", (F.hardswish,), ()),
    ("adaptive_max_pool", (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d,
                           F.adaptive_max_pool1d_with_indices, F.adaptive_max_pool2d_with_indices,
                           F.adaptive_max_pool3d_with_indices), ()),
    ("selu", (F.selu,), (F.selu_,)), ("celu", (F.celu,), (F.celu_,)), ("rrelu", (F.rrelu,), (F.rrelu_,)),
    ("threshold", (F.threshold,), (F.threshold_,)), ("prelu", (F.prelu,), ()), ("glu", (F.glu,), ()),
    ("logsigmoid", (F.logsigmoid,), ()), ("hardsigmoid", (F.hardsigmoid,), ()), ("softsign", (F.softsign,), ()),
    ("softmin", (F.softmin,), ()), ("tanhshrink", (F.tanhshrink,), ()), ("softshrink", (F.softshrink,), ()),
    ("hardshrink", (F.hardshrink,), ()), ("lp_pool", (F.lp_pool1d, F.lp_pool2d), ()),
    ("fractional_max_pool", (F.fractional_max_pool2d, F.fractional_max_pool3d, F.fractional_max_pool2d_with_indices,
                             F.fractional_max_pool3d_with_indices), ()),
]:
    OPERATIONS.update({f: Op(_kind, False) for f in _functions})
    OPERATIONS.update({f: Op(_kind, True) for f in _inplace_functions})
NONLINEAR = {op.kind for op in OPERATIONS.values()} - {"linear", "conv"}

# Operations that only LRP (chapter 9) gives a rule: a sum of two tensors (a residual connection), batch
# normalisation (folded into the layer before it), average pooling, and operations LRP refuses. They sit
# in a table of their own, consulted after OPERATIONS: the single-input machinery of the default Rule
# does not fit them (a sum has two tensor inputs), so only a method whose table names them sees them.
LRP_OPERATIONS: Dict[Callable, Op] = {}
for _kind, _functions, _inplace_functions in [
    ("add", (torch.add, Tensor.add, Tensor.__add__, Tensor.__radd__), (Tensor.add_, Tensor.__iadd__)),
    ("batch_norm", (F.batch_norm,), ()),
    ("avg_pool", (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
                  F.adaptive_avg_pool3d), ()),
    ("conv_transpose", (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d), ()),
    ("normalization", (F.layer_norm, F.group_norm, F.instance_norm, F.local_response_norm, F.normalize), ()),
    # a product or quotient: linear when one factor is a constant, else no rule applies
    ("product", (torch.mul, Tensor.mul, Tensor.__mul__, Tensor.__rmul__, torch.div, Tensor.div,
                 Tensor.__truediv__), (Tensor.mul_, Tensor.__imul__, Tensor.div_, Tensor.__itruediv__)),
    # nonlinear arithmetic that a model may write by hand (x ** 2, torch.exp, a swish, attention)
    ("elementwise", (torch.exp, Tensor.exp, torch.log, Tensor.log, torch.pow, Tensor.pow, Tensor.__pow__,
                     Tensor.__rpow__, torch.abs, Tensor.abs, Tensor.__abs__, torch.sqrt, Tensor.sqrt, torch.rsqrt,
                     Tensor.rsqrt, torch.square, Tensor.square, torch.reciprocal, Tensor.reciprocal,
                     Tensor.__rtruediv__, torch.sin, torch.cos, torch.erf, torch.sign, Tensor.sign, torch.clamp,
                     Tensor.clamp, torch.clip, Tensor.clip, torch.maximum, torch.minimum),
     (Tensor.exp_, Tensor.log_, Tensor.pow_, Tensor.abs_, Tensor.sqrt_, Tensor.clamp_, Tensor.clip_)),
    ("attention", (F.scaled_dot_product_attention, F.multi_head_attention_forward, torch.matmul, Tensor.matmul,
                   Tensor.__matmul__, torch.bmm, torch.einsum), ()),
]:
    LRP_OPERATIONS.update({f: Op(_kind, False) for f in _functions})
    LRP_OPERATIONS.update({f: Op(_kind, True) for f in _inplace_functions})


def vjp(f: Callable[[Tensor], Tensor], x: Tensor, v: Tensor) -> Tensor:
    """The ordinary chain rule through ``f`` at ``x``: v^T (df/dx)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(x), x, v)
    return g


class Rule:
    """How one operation ``y = f(x)`` passes the signal back; the default is the ordinary gradient.

    ``uses_output``: whether ``backward`` reads ``y`` (recomputed from ``x`` for it); when False it gets None.
    ``uses_input``: whether it reads ``x``; when False (and ``uses_output`` is False) nothing is saved
    for the backward pass, not even the copy an in-place operation would need.
    """

    uses_output = True
    uses_input = True

    def backward(self, x: Tensor, y: Tensor, grad_y: Tensor, f: Callable[[Tensor], Tensor]) -> Tensor:
        return vjp(f, x, grad_y)

    def apply(self, engine: "backward_rules", x: Tensor, f: Callable[[Tensor], Tensor], inplace: bool,
              call: "Call") -> Tensor:
        """Run ``y = f(x)`` (in place on ``x`` if ``inplace``) with this rule as its backward."""
        return _Ruled.apply(x, f, self, inplace)


class _Ruled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, rule, inplace):
        ctx.f, ctx.rule = f, rule
        ctx.keeps_x = rule.uses_input or rule.uses_output
        if inplace:                        # keep the input as it was before the operation overwrites it
            ctx.save_for_backward(x.clone() if ctx.keeps_x else None)
            in_place = _IN_PLACE.get(getattr(f, "function", None))
            in_place(x) if in_place is not None else x.copy_(f(x))
            ctx.mark_dirty(x)
            return x
        ctx.save_for_backward(x if ctx.keeps_x else None)   # not y: the model may still modify its output in place
        return f(x)

    @staticmethod
    def backward(ctx, grad_y):
        (x,) = ctx.saved_tensors
        y = None
        if ctx.rule.uses_output:
            with torch.no_grad():
                y = ctx.f(x)               # recomputed from the saved input (plain autograd inside backward)
        return ctx.rule.backward(x, y, grad_y, ctx.f), None, None, None


class Call(NamedTuple):
    """One intercepted call: the torch function, its arguments, and the arguments without ``inplace``."""

    function: Callable
    args: tuple
    kwargs: dict


# out-of-place versions of the in-place spellings, and the functions that take an ``inplace=`` flag
_OUT_OF_PLACE = {torch.relu_: torch.relu, Tensor.relu_: torch.relu, torch.sigmoid_: torch.sigmoid,
                 Tensor.sigmoid_: torch.sigmoid, torch.tanh_: torch.tanh, Tensor.tanh_: torch.tanh,
                 F.elu_: F.elu, F.leaky_relu_: F.leaky_relu, F.selu_: F.selu, F.celu_: F.celu, F.rrelu_: F.rrelu,
                 F.threshold_: F.threshold}


def _signature(f):
    try:
        return inspect.signature(f)
    except (TypeError, ValueError):    # some builtins have none
        return None


# the in-place kernels of the pure functions that have one (ReLU: the common case, e.g. torchvision's ResNets)
_IN_PLACE = {torch.relu: torch.relu_, F.relu: torch.relu_, Tensor.relu: torch.relu_}
_INPLACE_FLAG = {f: sig for f in OPERATIONS if (sig := _signature(f)) is not None and "inplace" in sig.parameters}


def _in_backward() -> bool:
    """True while autograd runs a backward pass: the rules' own computations are not intercepted."""
    return torch._C._current_graph_task_id() != -1


class backward_rules(TorchFunctionMode):
    """Context manager: inside it, the operations in ``rules`` pass the signal back by their rule.

    ``rules`` maps an operation kind (``"relu"``, ``"max_pool"``, ``"sigmoid"``, ... see
    :data:`OPERATIONS`) to a :class:`Rule`. ``refuse`` maps operation kinds to an explanation: calling
    one of them inside the block raises ``ValueError`` with it (a method that cannot handle an
    operation says so instead of giving a silently wrong answer). ``state`` is a scratch dictionary for
    rules that pass information forward (RevealCancel); it is emptied on exit.
    """

    def __init__(self, rules: Mapping[str, Rule], refuse: Optional[Mapping[str, str]] = None):
        super().__init__()
        self.rules = dict(rules)
        self.refuse = dict(refuse or {})
        self.state: dict = {}

    def __exit__(self, *exc):
        self.state.clear()
        return super().__exit__(*exc)

    def __torch_function__(self, function, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        op = OPERATIONS.get(function) or LRP_OPERATIONS.get(function)
        if op is None or (op.kind not in self.rules and op.kind not in self.refuse) or _in_backward():
            return function(*args, **kwargs)
        if op.kind in self.refuse:
            raise ValueError(f"{self.refuse[op.kind]} (the model calls {getattr(function, '__name__', function)})")
        x, more, rest = args[0], args[1:], kwargs
        inplace = op.inplace
        if function in _INPLACE_FLAG:
            bound = _INPLACE_FLAG[function].bind(*args, **kwargs)
            inplace = bool(bound.arguments.pop("inplace", False))
            x, *more = bound.arguments.values()
            rest = {}
        if op.kind == "max_pool" and (kwargs.get("return_indices") or (len(args) > 6 and args[6])
                                      or function.__name__.endswith("_with_indices")):
            raise ValueError("backward rules cannot replace a max-pooling that returns its indices")
        pure = _OUT_OF_PLACE.get(function, function)
        f = (lambda t: pure(t, *more, **rest))
        f.function = pure if not more and not rest else None    # lets _Ruled use an in-place kernel
        return self.rules[op.kind].apply(self, x, f, inplace, Call(function, (x, *more), rest))


# ------------------------------------------------------------------------------------------------------
# Rules shared by several methods
class GuidedReLU(Rule):
    """Guided backprop (Springenberg et al., 2015): pass back only positive signal, where the input was positive."""

    uses_output = False

    def backward(self, x, y, grad_y, f):
        # [x > 0] · max(0, R): the ReLU's own backward (one fused kernel) applied to the clamped signal
        return torch.ops.aten.threshold_backward(grad_y.clamp(min=0), x, 0)


class DeconvReLU(Rule):
    """DeConvNet (Zeiler & Fergus, 2014): pass back only positive signal, whatever the input was."""

    uses_output = False

    def backward(self, x, y, grad_y, f):
        return grad_y.clamp(min=0)


def refusing(kinds: Iterable[str], method: str, rules: Mapping[str, Rule]) -> Dict[str, str]:
    """The ``refuse`` table of a method that needs a rule for every nonlinearity in ``kinds``."""
    return {k: f"{method} has no rule for the nonlinear operation '{k}': its attributions would be silently "
               f"wrong; use a model built from {', '.join(sorted(rules))}"
            for k in kinds if k not in rules}
