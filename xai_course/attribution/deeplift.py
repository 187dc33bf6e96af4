"""DeepLIFT and DeepSHAP (chapter 3): differences from a reference, split by multipliers.

Shrikumar, Greenside & Kundaje (2017), "Learning Important Features Through Propagating Activation
Differences". For the input x, a reference x' and the target logit t, DeepLIFT assigns contributions
C_{Δx_i Δt} that sum to the difference (summation-to-delta)

    Σ_i C_{Δx_i Δt} = Δt = t(x) - t(x'),       C_{Δx_i Δt} = m_{Δx_i Δt} · Δx_i,

where the multipliers m obey the chain rule m_{Δx_i Δt} = Σ_j m_{Δx_i Δy_j} m_{Δy_j Δt}. Linear layers
keep their weights as multipliers; a nonlinearity y = f(x) gets, by the **Rescale** rule,

    m_{Δx Δy} = Δy / Δx = (f(x) - f(x')) / (x - x')   (the gradient f'(x) where Δx ≈ 0),

so DeepLIFT-Rescale is the gradient with the nonlinearities' backward rule replaced: a table of rules on
the engine of :mod:`rules`. The network runs once on the batch [x; x'] so each rule sees both.
**RevealCancel** treats the positive and negative parts of Δx separately (see :class:`RevealCancel`).
Max-pooling passes each difference back to the positions that were maximal in x or in x', split so that
summation-to-delta holds (Captum's rule). DeepSHAP averages DeepLIFT over a set of references
(Lundberg & Lee, 2017), approximating SHAP values for a background distribution.
"""
from __future__ import annotations

import torch
from torch import nn

from ._core import Target, check_call, explaining, register, target_logits
from .baselines import Baseline, make_baseline
from .rules import NONLINEAR, Rule, backward_rules, refusing, vjp

EPS = 1e-10  # |Δx| below which a multiplier falls back to the gradient (as Captum)


def _halves(t):
    """Input and reference halves of a stacked batch [x; x']."""
    n = t.shape[0] // 2
    return t[:n], t[n:]


def _twice(t):
    return torch.cat([t, t])


class Rescale(Rule):
    """m = Δy/Δx for an elementwise nonlinearity, the gradient where |Δx| < EPS."""

    def backward(self, x, y, grad_y, f):
        (x1, x0), (y1, y0) = _halves(x), _halves(y)
        dx = x1 - x0
        small = dx.abs() < EPS
        m = (y1 - y0) / torch.where(small, 1.0, dx)                  # Δy/Δx, the same for both halves
        grad_x = grad_y.view(2, *dx.shape) * m
        if small.any():
            grad_x = torch.where(small, vjp(f, x, grad_y).view_as(grad_x), grad_x)
        return grad_x.view_as(grad_y)


class RescaleMaxPool(Rule):
    """Max-pooling: the output difference goes back to the maxima of x and of x', summing to Δy."""

    def backward(self, x, y, grad_y, f):
        (x1, x0), (y1, y0) = _halves(x), _halves(y)
        dx = x1 - x0
        small = dx.abs() < EPS
        top = torch.max(y1, y0)
        # the multipliers m are the x half's signal; the reference half's may differ where Δ = 0 (the
        # gradient fallback routes it to x''s maxima) and must not leak into x's multipliers
        m, _ = _halves(grad_y)
        with torch.enable_grad():
            xx = x.detach().requires_grad_(True)
            yy = f(xx)
            # m·Δy = m·(top - y') + m·(y - top): the first part goes to x's maxima, the second to x''s
            (spread,) = torch.autograd.grad(yy, xx, torch.cat([m * (top - y0), m * (y1 - top)]),
                                            retain_graph=True)
            grad_x = (spread.view(2, *dx.shape).sum(0) / torch.where(small, 1.0, dx)).expand(2, *dx.shape)
            if small.any():
                (ordinary,) = torch.autograd.grad(yy, xx, _twice(m))
                grad_x = torch.where(small, ordinary.view_as(grad_x), grad_x)
        return grad_x.reshape(x.shape)


class _SplitLinear(torch.autograd.Function):
    """A linear layer under RevealCancel: y and the positive / negative parts Δy⁺, Δy⁻ of its change."""

    @staticmethod
    def forward(ctx, x, f, g):
        dx = torch.sub(*_halves(x))
        dplus = g(dx.clamp(min=0), positive=True) + g(dx.clamp(max=0), positive=False)
        dminus = g(dx.clamp(min=0), positive=False) + g(dx.clamp(max=0), positive=True)
        ctx.save_for_backward(dx)
        ctx.f, ctx.g = f, g
        return f(x), _twice(dplus), _twice(dminus)

    @staticmethod
    def backward(ctx, grad_y, grad_plus, grad_minus):
        (dx,) = ctx.saved_tensors
        x0 = torch.zeros_like(_twice(dx))
        grad = vjp(ctx.f, x0, grad_y)  # the ordinary multipliers, for other users of y
        # an input with Δx_i > 0 fed Δy⁺ through w > 0 and Δy⁻ through w < 0; one with Δx_i < 0 the reverse
        to_plus = vjp(lambda t: ctx.g(t, positive=True), x0, grad_plus) + vjp(lambda t: ctx.g(t, positive=False), x0, grad_minus)
        to_minus = vjp(lambda t: ctx.g(t, positive=False), x0, grad_plus) + vjp(lambda t: ctx.g(t, positive=True), x0, grad_minus)
        sign = _twice(dx.sign())
        grad = grad + torch.where(sign > 0, to_plus, torch.where(sign < 0, to_minus, (to_plus + to_minus) / 2))
        return grad, None, None


class _RevealCancelActivation(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dplus, dminus, f, inplace):
        x_in = x.clone() if inplace else x
        y = f(x)
        _, ref = _halves(x_in)
        p, m = _halves(dplus)[0], _halves(dminus)[0]
        # the RevealCancel split of Δy into the effect of Δx⁺ and of Δx⁻ (each averaged over both orders)
        up = 0.5 * (f(ref + p) - f(ref)) + 0.5 * (f(ref + m + p) - f(ref + m))
        down = 0.5 * (f(ref + m) - f(ref)) + 0.5 * (f(ref + p + m) - f(ref + p))
        ctx.save_for_backward(x_in, p, m, up, down)
        ctx.f = f
        if inplace:
            x.copy_(y)
            ctx.mark_dirty(x)
            return x
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, p, m, up, down = ctx.saved_tensors
        gradient = _halves(vjp(ctx.f, x, torch.ones_like(x)))[0]      # f'(x), where a part is ~0
        m_plus = torch.where(p.abs() < EPS, gradient, up / torch.where(p.abs() < EPS, 1.0, p))
        m_minus = torch.where(m.abs() < EPS, gradient, down / torch.where(m.abs() < EPS, 1.0, m))
        return None, grad_y * _twice(m_plus), grad_y * _twice(m_minus), None, None


class RevealCancel(Rule):
    """RevealCancel (Shrikumar et al. 2017, Sec. 3.5.3) for a nonlinearity fed directly by a Linear/Conv layer.

    With Δx⁺, Δx⁻ the positive and negative contributions to the nonlinearity's input change,
    Δy⁺ = ½(f(x'+Δx⁺) - f(x')) + ½(f(x'+Δx⁻+Δx⁺) - f(x'+Δx⁻)) and m⁺ = Δy⁺/Δx⁺ (likewise for Δy⁻, m⁻):
    positive and negative evidence that cancel are both revealed instead of hiding each other.
    """

    def apply(self, engine, x, f, inplace, call):
        parts = engine.state.get(id(x))
        if parts is None or parts[0] is not x:
            raise ValueError("rule='reveal_cancel' needs every nonlinearity to take the output of a Linear or Conv "
                             "layer directly (no BatchNorm, sum or reshape in between); use rule='rescale' here")
        return _RevealCancelActivation.apply(x, parts[1], parts[2], f, inplace)


class SplitLinear(Rule):
    """Linear/Conv layers under RevealCancel: also pass Δy⁺ and Δy⁻ forward to the next nonlinearity."""

    def apply(self, engine, x, f, inplace, call):
        function, (_, weight, *more), kwargs = call
        bias_free = list(more)
        if bias_free:
            bias_free[0] = None
        kwargs = {k: (None if k == "bias" else v) for k, v in kwargs.items()}

        def g(t, positive):
            w = weight.detach().clamp(min=0) if positive else weight.detach().clamp(max=0)
            return function(t, w, *bias_free, **kwargs)

        y, dplus, dminus = _SplitLinear.apply(x, f, g)
        engine.state[id(y)] = (y, dplus, dminus)
        return y


RULES = {
    "rescale": {k: Rescale() for k in ("relu", "sigmoid", "tanh", "elu", "leaky_relu", "softplus")}
    | {"max_pool": RescaleMaxPool()},
    "reveal_cancel": {k: RevealCancel() for k in ("relu", "sigmoid", "tanh", "elu", "leaky_relu", "softplus")}
    | {"max_pool": RescaleMaxPool(), "linear": SplitLinear(), "conv": SplitLinear()},
}


def _deeplift(model, inputs, reference, target, rule):
    """Attributions (x - x')·m and both logits, for checked inputs and references of the same shape."""
    n = inputs.shape[0]
    with explaining(model), backward_rules(RULES[rule], refusing(NONLINEAR, "DeepLIFT", RULES[rule])):
        both = torch.cat([inputs.detach(), reference]).requires_grad_(True)
        logits = target_logits(model, both.clone(), torch.cat([target, target]))
        (multipliers,) = torch.autograd.grad(logits.sum(), both)
    return (inputs.detach() - reference) * multipliers[:n], logits[:n].detach(), logits[n:].detach()


@register("deeplift")
def deeplift(model: nn.Module, inputs: torch.Tensor, target: Target, baseline: Baseline = None,
             rule: str = "rescale", return_delta: bool = False):
    """DeepLIFT contributions C = m · (x - x') of each input to t(x) - t(x') (chapter 3).

    ``baseline``: the reference x' (see :func:`make_baseline`; default zeros). ``rule``: ``"rescale"``
    or ``"reveal_cancel"``. With ``return_delta`` also returns the summation-to-delta error per example,
    Σ_i C_i - (t(x) - t(x')), which is 0 up to rounding for networks of linear layers, the supported
    nonlinearities and max-pooling.
    """
    if not isinstance(rule, str) or rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(map(repr, RULES))}, got {rule!r}")
    if not isinstance(return_delta, bool):
        raise TypeError(f"return_delta must be True or False, got {return_delta!r}")
    model, inputs, target = check_call(model, inputs, target)
    reference = make_baseline(inputs, baseline)
    attributions, t_x, t_ref = _deeplift(model, inputs, reference, target, rule)
    if return_delta:
        return attributions, attributions.flatten(1).sum(1) - (t_x - t_ref)
    return attributions


@register("deepshap")
def deepshap(model: nn.Module, inputs: torch.Tensor, target: Target, baselines: torch.Tensor) -> torch.Tensor:
    """DeepSHAP: DeepLIFT-Rescale averaged over the references ``baselines`` (B, *input shape) (chapter 3).

    Each input is paired with every reference; the mean attribution sums to t(x) - mean_b t(x'_b).
    """
    model, inputs, target = check_call(model, inputs, target)
    if not isinstance(baselines, torch.Tensor) or baselines.ndim != inputs.ndim or baselines.shape[1:] != inputs.shape[1:]:
        got = tuple(baselines.shape) if isinstance(baselines, torch.Tensor) else type(baselines).__name__
        raise ValueError(f"baselines must be a tensor (B, {', '.join(map(str, inputs.shape[1:]))}) of references, got {got}")
    if baselines.shape[0] == 0:
        raise ValueError("baselines must hold at least one reference, got an empty batch")
    references = make_baseline(baselines, baselines, name="baselines").to(inputs.dtype)
    n, b = inputs.shape[0], references.shape[0]
    pairs = inputs.detach().repeat_interleave(b, dim=0)            # x_1 b times, x_2 b times, ...
    attributions, _, _ = _deeplift(model, pairs, references.repeat(n, *[1] * (inputs.ndim - 1)),
                                   target.repeat_interleave(b), "rescale")
    return attributions.view(n, b, *inputs.shape[1:]).mean(1)
