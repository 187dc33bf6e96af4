"""Layer-wise relevance propagation (chapter 9): the rules of :mod:`lrp_rules` on the engine of :mod:`rules`.

Bach, Binder, Montavon, Klauschen, Müller & Samek (2015), "On Pixel-Wise Explanations for Non-Linear
Classifier Decisions by Layer-Wise Relevance Propagation"; Montavon, Binder, Lapuschkin, Samek & Müller
(2019), "Layer-Wise Relevance Propagation: An Overview". The target logit f(x) is the relevance of the
output; every layer passes its outputs' relevance R_k to its inputs by a rule that keeps (up to the
bias and the stabiliser) the sum, so that f(x) ≈ Σ_i R_i at the input:

- every F.linear / F.conv call: its LRP rule (by module: ``rule`` everywhere, or a ``composite``);
- a BatchNorm right after a linear or convolution layer: folded into it (W ← W·γ/σ, b ← (b − μ)·γ/σ + β)
  for this call only: the rule sees one layer, and nothing in the model is changed;
- a sum of two tensors (a residual connection): R split in proportion to the summands, R_i = x_i·R/Σx;
- average pooling: a linear layer with positive weights (the ε rule, as zennit's Norm);
- ReLU, ReLU6, leaky ReLU, ELU, tanh, hardtanh: relevance passes unchanged (as zennit's Pass); max-pooling:
  to the winner (the gradient);
- a product with a constant (x·c, x/c): the gradient, as zennit; a product of two computed tensors,
  attention, matmul, and nonlinear arithmetic written by hand (exp, x**2, abs, clamp, normalize, ...):
  refused, as are any other nonlinearity, a BatchNorm that cannot be folded, transposed convolutions,
  layer or group norm: a ValueError (the relevance would be silently wrong).
"""
from __future__ import annotations

import contextlib
import math
import weakref
from numbers import Real

import torch
from torch import nn

from ._core import Target, check_call, explaining, fast_layout, register, target_logits
from .lrp_rules import (AlphaBeta, Epsilon, Flat, Gamma, Layer, LRPRule, WSquare, Zero, ZBox, ZPlus, divide,
                        has_negative)
from .rules import NONLINEAR, Rule, backward_rules, refusing, vjp


class _Relevance(torch.autograd.Function):
    """Forward y = layer(a) (or compute()); backward: the rule's R of a.

    A rule that splits the weights by sign, on an input a ≥ 0: the forward pass computes the parts
    [W⁺ᵀa + c⁺; W⁻ᵀa + c⁻] (c⁺ + c⁻ = b: the rule's constants) in one convolution and y as their sum
    (z⁺: W⁺ᵀa + c⁺, and y by the layer's own call), and the backward pass needs no forward convolution
    of its own (a layer folded from a BatchNorm reuses them).
    """

    @staticmethod
    def forward(ctx, a, layer, rule, compute):
        ctx.layer, ctx.rule = layer, rule
        if rule.split and layer.source is None and not has_negative(a):
            layer.parts = layer.signed_parts(a, rule)
        ctx.split = rule.split and layer.splits
        if ctx.split:                      # the parts stay with the layer (Layer.take_parts)
            ctx.save_for_backward(a)
            if compute:
                return compute()
            if rule.parts == 1:            # z⁺ keeps W⁺ᵀa only: y is the layer's own call
                return layer(a, layer.weight, layer.bias)
            return torch.add(*layer.halves(layer.parts))   # the constants sum to b
        y = compute() if compute else layer(a, layer.weight, layer.bias)
        # a copy of z: an in-place ReLU may overwrite y
        ctx.save_for_backward(a, y.clone() if rule.needs_output else None)
        return y

    @staticmethod
    def backward(ctx, R):
        layer = ctx.layer
        if ctx.split:
            (a,) = ctx.saved_tensors
            return ctx.rule.relevance_split(a, R, layer, layer.take_parts(a, ctx.rule)), None, None, None
        a, z = ctx.saved_tensors
        return ctx.rule.relevance(a, R, layer, z), None, None, None


_CONV_ARGS = ("weight", "bias", "stride", "padding", "dilation", "groups")


class LayerRule(Rule):
    """The engine's rule for F.linear and F.conv: the LRP rule assigned to the call's weight."""

    def __init__(self, by_weight: dict, default: LRPRule):
        self.by_weight, self.default = by_weight, default

    def apply(self, engine, x, f, inplace, call):
        options = dict(zip(_CONV_ARGS, call.args[1:])) | dict(call.kwargs)
        weight, bias = options.pop("weight"), options.pop("bias", None)
        layer = Layer(call.function, weight, bias, options)
        rule = self.by_weight.get(id(weight), self.default)
        y = _Relevance.apply(x, layer, rule, None)
        # for a BatchNorm after it; y held weakly: holding it would keep every layer's output alive
        # until the call ends (the rules' backward passes need none of them)
        engine.state[id(y)] = (weakref.ref(y), x, layer, rule)
        return y


class FoldBatchNorm(Rule):
    """BatchNorm (eval) on a linear/conv layer's output: one layer with folded weights, that layer's rule."""

    def apply(self, engine, x, f, inplace, call):
        names = ("running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
        bn = dict(zip(names, call.args[1:])) | dict(call.kwargs)
        parts = engine.state.get(id(x))
        if parts is None or parts[0]() is not x or bn.get("training") or bn["running_mean"] is None:
            raise ValueError("lrp folds each BatchNorm into the linear or convolution layer right before it; "
                             "this one follows no such layer (or is in training mode), so lrp cannot handle it")
        _, a, layer, rule = parts
        if layer.dim == -1 and x.ndim != 2:
            # BatchNorm normalises dimension 1; a linear layer's features are the last dimension, the
            # same one only for (N, features) outputs
            raise ValueError(f"lrp folds a BatchNorm into the linear layer before it only on (N, features) "
                             f"outputs; this one normalises dimension 1 of a {tuple(x.shape)} output, not the "
                             "layer's features, so lrp cannot handle it")
        scale = torch.rsqrt(bn["running_var"] + bn.get("eps", 1e-5))
        if bn.get("weight") is not None:
            scale = scale * bn["weight"]
        shift = -bn["running_mean"] * scale + (0 if bn.get("bias") is None else bn["bias"])
        return _Relevance.apply(a, layer.folded(scale.detach(), shift.detach()), rule, lambda: f(x))


class Pass(Rule):
    """An elementwise activation: relevance passes unchanged (zennit's Pass)."""

    uses_output = uses_input = False

    def backward(self, x, y, grad_y, f):
        return grad_y


class Norm(Rule):
    """Average pooling as a linear layer with positive weights: R_in = x ⊙ ∇f(R ⊘ f(x))."""

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = stabilizer

    def backward(self, x, y, grad_y, f):
        return x * vjp(f, x, divide(grad_y, y, self.stabilizer))


class _Split(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, v, inplace, stabilizer):
        ctx.stabilizer = stabilizer
        ctx.save_for_backward(u.clone() if inplace else u, v)
        if inplace:
            ctx.mark_dirty(u)
            return u.add_(v)
        return u + v

    @staticmethod
    def backward(ctx, R):
        u, v = ctx.saved_tensors
        s = divide(R, u + v, ctx.stabilizer)
        return u * s, s.mul_(v), None, None


class Product(Rule):
    """x·c or x/c with c a constant (a number, a parameter): the gradient, as zennit passes it; a product
    or quotient of two tensors computed from the input (gating, attention) is refused."""

    def apply(self, engine, x, f, inplace, call):
        other = call.args[1] if len(call.args) > 1 else call.kwargs.get("other")
        computed = [t for t in (x, other) if isinstance(t, torch.Tensor) and t.grad_fn is not None]
        if len(computed) == 2:
            raise ValueError("lrp has no rule for a product or quotient of two tensors computed from the input "
                             f"(the model calls {getattr(call.function, '__name__', call.function)}): its relevance "
                             "would be silently wrong")
        return call.function(*call.args, **call.kwargs)


class SplitSum(Rule):
    """u + v of two tensors computed from the input: R_u = u·R/(u + v), R_v = v·R/(u + v)."""

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = stabilizer

    def apply(self, engine, x, f, inplace, call):
        other = call.args[1] if len(call.args) > 1 else None
        if (not isinstance(other, torch.Tensor) or x.grad_fn is None or other.grad_fn is None or call.kwargs
                or len(call.args) > 2 or other.shape != x.shape):
            return call.function(*call.args, **call.kwargs)   # a constant term: like a bias
        return _Split.apply(x, other, inplace, self.stabilizer)


LINEAR_TYPES, CONV_TYPES = (nn.Linear,), (nn.Conv1d, nn.Conv2d, nn.Conv3d)
RULE_NAMES = ("zero", "epsilon", "gamma", "alpha_beta", "z_plus", "flat", "w_square")
COMPOSITES = ("epsilon_plus", "epsilon_gamma_box", "epsilon_alpha2_beta1", "epsilon_plus_flat")


def make_rule(name, epsilon=1e-6, gamma=0.25, alpha=2.0, beta=1.0) -> LRPRule:
    return {"zero": Zero, "epsilon": lambda: Epsilon(epsilon), "gamma": lambda: Gamma(gamma),
            "alpha_beta": lambda: AlphaBeta(alpha, beta), "z_plus": ZPlus, "flat": Flat,
            "w_square": WSquare}[name]()


def assign_rules(model, rule, composite, epsilon, gamma, alpha, beta, low, high):
    """{id(weight): rule} for every Linear/Conv module, and the rules for (functional) convs and linears.

    zennit's composites: convolutions get z⁺ / γ / α2β1, fully connected layers ε; "the first layer" is the
    first matching module in registration order (z^B: the first convolution; flat: the first of either).
    """
    if composite is None:
        one = make_rule(rule, epsilon, gamma, alpha, beta)
        return {id(m.weight): one for m in model.modules() if isinstance(m, LINEAR_TYPES + CONV_TYPES)}, one, one
    dense = Epsilon(epsilon)
    conv = {"epsilon_plus": ZPlus(), "epsilon_plus_flat": ZPlus(), "epsilon_gamma_box": Gamma(gamma),
            "epsilon_alpha2_beta1": AlphaBeta(2.0, 1.0)}[composite]
    first = {"epsilon_gamma_box": (CONV_TYPES, ZBox(low, high)),
             "epsilon_plus_flat": (LINEAR_TYPES + CONV_TYPES, Flat())}.get(composite)
    by_weight = {}
    for m in model.modules():
        if isinstance(m, LINEAR_TYPES + CONV_TYPES):
            by_weight[id(m.weight)] = conv if isinstance(m, CONV_TYPES) else dense
            if first is not None and isinstance(m, first[0]):
                by_weight[id(m.weight)], first = first[1], None
    return by_weight, dense, conv


def _check(rule, composite, epsilon, gamma, alpha, beta, low, high):
    if composite is None and rule not in RULE_NAMES:
        raise ValueError(f"rule must be one of {', '.join(map(repr, RULE_NAMES))}, got {rule!r}")
    if composite is not None and composite not in COMPOSITES:
        raise ValueError(f"composite must be None or one of {', '.join(map(repr, COMPOSITES))}, got {composite!r}")
    for name, value in (("epsilon", epsilon), ("gamma", gamma), ("alpha", alpha), ("beta", beta)):
        if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value < math.inf:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    for name, value in (("low", low), ("high", high)):
        if not (isinstance(value, torch.Tensor) and value.is_floating_point()) and (
                isinstance(value, bool) or not isinstance(value, Real)):
            raise ValueError(f"{name} must be a number or a float tensor (the input's bound for z^B), got {value!r}")
    if rule == "alpha_beta" and composite is None and abs(alpha - beta - 1) > 1e-12:
        raise ValueError(f"alpha - beta must be 1 (relevance is conserved), got alpha={alpha}, beta={beta}")
    try:
        below = bool(torch.all(torch.as_tensor(low) < torch.as_tensor(high)))
    except RuntimeError:
        raise ValueError(f"low and high must broadcast together, got shapes {tuple(torch.as_tensor(low).shape)} "
                         f"and {tuple(torch.as_tensor(high).shape)}") from None
    if not below:
        raise ValueError(f"low must be below high (the input's bounds for z^B), got low={low}, high={high}")


@contextlib.contextmanager
def relevance_rules(model, rule="epsilon", composite=None, epsilon=1e-6,
                    gamma=0.25, alpha=2.0, beta=1.0, low=0.0, high=1.0):
    """In this block, backward passes through ``model`` propagate relevance.

    The signal that reaches any tensor of the forward pass is its relevance
    R (the chapter shows conservation at every layer with it). Arguments as
    for :func:`lrp` (checked there).
    """
    by_weight, dense, conv = assign_rules(model, rule, composite, epsilon,
                                          gamma, alpha, beta, low, high)
    # LRP-0: exact shares in sums and pooling too (= gradient × input)
    stabilizer = 0.0 if composite is None and rule == "zero" else 1e-6
    table = {"linear": LayerRule(by_weight, dense),
             "conv": LayerRule(by_weight, conv),
             "batch_norm": FoldBatchNorm(), "add": SplitSum(stabilizer),
             "avg_pool": Norm(stabilizer), "product": Product()}
    table |= {k: Pass() for k in ("relu", "leaky_relu", "elu", "tanh", "hardtanh")}
    refuse = refusing(NONLINEAR - {"max_pool"}, "lrp", table)
    refuse |= {k: f"lrp has no rule for '{k}'"
               for k in ("conv_transpose", "normalization")}
    refuse |= {"elementwise": "lrp has no rule for this nonlinear operation: its relevance would be silently wrong",
               "attention": "lrp has no rule for attention or products of tensors computed from the input "
                            "(matmul, bmm, einsum): use nn.Linear for a linear layer"}
    with explaining(model), backward_rules(table, refuse) as engine:
        yield engine


@register("lrp")
def lrp(model: nn.Module, inputs: torch.Tensor, target: Target, rule: str = "epsilon", composite=None,
        epsilon: float = 1e-6, gamma: float = 0.25, alpha: float = 2.0, beta: float = 1.0, low=0.0, high=1.0):
    """Relevance R_i of every input for the target logit f(x), Σ_i R_i ≈ f(x) (chapter 9).

    ``rule``: the rule of every linear and convolution layer, ``"zero"``, ``"epsilon"`` (ε = ``epsilon``),
    ``"gamma"`` (``gamma``), ``"alpha_beta"`` (``alpha`` − ``beta`` = 1), ``"z_plus"``, ``"flat"`` or
    ``"w_square"``. ``composite`` (zennit's, by name) overrides it per layer: ``"epsilon_plus"``,
    ``"epsilon_gamma_box"`` (z^B with bounds ``low``/``high`` on the first convolution),
    ``"epsilon_alpha2_beta1"``, ``"epsilon_plus_flat"``.
    """
    _check(rule, composite, epsilon, gamma, alpha, beta, low, high)
    model, inputs, target = check_call(model, inputs, target)
    for name, bound in (("low", low), ("high", high)):
        if isinstance(bound, torch.Tensor):
            try:
                torch.broadcast_shapes(bound.shape, inputs.shape)
            except RuntimeError:
                raise ValueError(f"{name} must broadcast to the inputs' shape {tuple(inputs.shape)} (a number, "
                                 f"or one value per channel shaped (C, 1, 1)), got shape {tuple(bound.shape)}") from None
    with relevance_rules(model, rule, composite, epsilon, gamma, alpha, beta,
                         low, high):
        x = inputs.detach().requires_grad_(True)
        # CPU convolutions (oneDNN) run faster on channels-last images, the rules' extra ones too
        logits = target_logits(model, x.clone(memory_format=fast_layout(x, model)), target)
        # the output's relevance is f(x) itself
        (relevance,) = torch.autograd.grad(logits, x, logits.detach())
    return relevance.contiguous()
