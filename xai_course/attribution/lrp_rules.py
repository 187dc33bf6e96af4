"""The LRP rules of chapter 9, one small class per equation (Bach et al. 2015; Montavon et al. 2019).

Every rule redistributes the relevance R_k of a layer's outputs to its inputs a_j in the four steps of
the slide "LRP Calculation", with W₊ the rule's modified weights:

    z = W₊ᵀ a          forward pass with the modified weights (and bias)
    s = R ⊘ z          element-wise division (stabilised: z + ε·sign(z), sign(0) = +1)
    c = W₊ s           the gradient of z with respect to a, applied to s (one backward pass)
    R = a ⊙ c          element-wise product

A :class:`Layer` is one call of a linear or convolution layer; ``layer(a, w, b)`` is step 1 with other
weights, ``layer.gradient(a, s, w)`` step 3 (the kernel autograd runs for the layer's input gradient).
The rules follow zennit 0.5 where it extends the textbook (the course's tests check it to float error):
z⁺, αβ and γ also route negative inputs (a⁻ with the opposite weights), the bias enters the
denominators (b⁺ for z⁺, b + γb⁺ for γ), and γ treats positive and negative outputs separately.
"""
from __future__ import annotations

import torch
from torch.nn.modules.utils import _ntuple

Tensor = torch.Tensor


def stabilize(z: Tensor, epsilon: float) -> Tensor:
    """z + ε·sign(z), sign(0) = +1: never crosses 0 (zennit's stabiliser)."""
    return torch.where(z >= 0, z + epsilon, z - epsilon)


def divide(R: Tensor, z: Tensor, epsilon: float) -> Tensor:
    """s = R ⊘ z, stabilised by ε; with ε = 0 exact, and 0 where z = 0 (LRP-0)."""
    if epsilon == 0:
        return torch.where(z == 0, 0.0, R / z)
    return R / stabilize(z, epsilon)


class Layer:
    """One call ``y = function(a, weight, bias, **options)`` of F.linear or F.conv1d/2d/3d."""

    def __init__(self, function, weight: Tensor, bias, options: dict):
        self.function, self.weight, self.bias, self.options = function, weight.detach(), bias, options
        self.bias = None if bias is None else bias.detach()
        self.parts = None          # (W⁺ᵀa, W⁻ᵀa) once :meth:`signed_parts` has run on a ≥ 0
        self.source = None         # (layer, scale) for a layer folded from another one

    @property
    def dim(self) -> int:
        """The output dimension that holds the channels (features for F.linear)."""
        return -1 if self.function is torch.nn.functional.linear else 1

    def per_channel(self, t: Tensor, like: Tensor) -> Tensor:
        shape = [1] * like.ndim
        shape[self.dim] = -1
        return t.view(shape)

    def signed_parts(self, a: Tensor):
        """``(p, n) = (W⁺ᵀa, W⁻ᵀa)`` (no bias) for a ≥ 0: what z⁺, αβ and γ divide by.

        One call with the stacked weights [W⁺; W⁻]; a layer folded from another reuses that
        layer's parts (per output channel, scale·W has positive part s⁺W⁺ + s⁻W⁻).
        """
        if self.source is not None and self.source[0].parts is not None:
            (p, n), scale = self.source[0].parts, self.source[1]
            if bool((scale >= 0).all()):       # the common case: W⁺ and W⁻ keep their signs
                s = self.per_channel(scale, p)
                self.parts = (p * s, n * s)
            else:
                up, down = self.per_channel(scale.clamp(min=0), p), self.per_channel(scale.clamp(max=0), p)
                self.parts = (up * p + down * n, up * n + down * p)
        elif self.options.get("groups", 1) == 1:
            w = self.weight
            self.parts = self(a, torch.cat([w.clamp(min=0), w.clamp(max=0)]), None).chunk(2, dim=self.dim)
        else:
            self.parts = (self(a, self.weight.clamp(min=0)), self(a, self.weight.clamp(max=0)))
        return self.parts

    def gradients(self, a: Tensor, pairs) -> Tensor:
        """Σ W_i s_i over ``pairs`` [(s_i, W_i), ...]: one backward call with stacked weights if it can."""
        if self.options.get("groups", 1) == 1 and len(pairs) > 1:
            return self.gradient(a, torch.cat([s for s, _ in pairs], dim=self.dim),
                                 torch.cat([w for _, w in pairs]))
        return sum(self.gradient(a, s, w) for s, w in pairs)

    def __call__(self, a: Tensor, w: Tensor, b=None) -> Tensor:
        return self.function(a, w, b, **self.options)

    def gradient(self, a: Tensor, s: Tensor, w: Tensor) -> Tensor:
        """c = W s: the layer's gradient with respect to its input a, applied to s."""
        if self.function is torch.nn.functional.linear:
            return s.matmul(w)
        o, d = self.options, w.ndim - 2
        if isinstance(o.get("padding", 0), str):      # padding="same": let autograd work it out
            with torch.enable_grad():
                a = a.detach().requires_grad_(True)
                return torch.autograd.grad(self(a, w), a, s)[0]
        n = _ntuple(d)
        return torch.ops.aten.convolution_backward(
            s, a, w, None, n(o.get("stride", 1)), n(o.get("padding", 0)), n(o.get("dilation", 1)), False,
            [0] * d, o.get("groups", 1), [True, False, False])[0]

    def folded(self, scale: Tensor, shift: Tensor) -> "Layer":
        """The layer followed by an affine map per output channel (a BatchNorm in eval mode)."""
        index = (slice(None),) + (None,) * (self.weight.ndim - 1)
        bias = shift if self.bias is None else self.bias * scale + shift
        folded = Layer(self.function, self.weight * scale[index], bias, self.options)
        folded.source = (self, scale)
        return folded


def _plus(t):
    return None if t is None else t.clamp(min=0)


def _minus(t):
    return None if t is None else t.clamp(max=0)


class LRPRule:
    """``relevance(a, R, layer, z)``: the relevance of the inputs a; z is the layer's output if known.

    Rules that split the weights by sign (z⁺, αβ, γ) also have ``relevance_split(a, R, layer, p, n)``
    for inputs a ≥ 0 (after a ReLU), with ``(p, n) = layer.signed_parts(a)`` computed in the forward
    pass: one convolution with stacked weights instead of the layer's own and then two more.
    """

    needs_output = False
    split = False

    def relevance(self, a: Tensor, R: Tensor, layer: Layer, z) -> Tensor:
        raise NotImplementedError


class Epsilon(LRPRule):
    """LRP-ε: R_j = Σ_k a_j w_jk / (z_k + ε·sign(z_k)) R_k (bias in z_k)."""

    needs_output = True

    def __init__(self, epsilon: float = 1e-6):
        self.epsilon = epsilon

    def relevance(self, a, R, layer, z):
        s = R / stabilize(z, self.epsilon)                 # s = R ⊘ z
        c = layer.gradient(a, s, layer.weight)             # c = W s
        return a * c                                       # R = a ⊙ c


class Zero(Epsilon):
    """LRP-0: LRP-ε with ε = 0 (where z_k = 0, R_k is 0 too on ReLU nets and s_k is taken as 0)."""

    def __init__(self):
        super().__init__(0.0)

    def relevance(self, a, R, layer, z):
        return a * layer.gradient(a, divide(R, z, 0.0), layer.weight)


def _signed(a, R, layer, w_pos, w_neg, b, epsilon, negative=None):
    """a⁺ ⊙ W₁s + a⁻ ⊙ W₂s, with z = W₁ᵀa⁺ + W₂ᵀa⁻ + b (W₁ = w_pos).

    ``negative``: whether a has negative entries, if the caller knows (after a ReLU it has none:
    then a = a⁺ and the a⁻ terms are skipped, which saves two passes over a and two convolutions).
    """
    if negative is None:
        negative = bool((a < 0).any())
    if not negative:
        return a * layer.gradient(a, R / stabilize(layer(a, w_pos, b), epsilon), w_pos)
    ap, an = a.clamp(min=0), a.clamp(max=0)
    s = R / stabilize(layer(ap, w_pos, b) + layer(an, w_neg), epsilon)
    return ap * layer.gradient(a, s, w_pos) + an * layer.gradient(a, s, w_neg)


class ZPlus(LRPRule):
    """LRP-z⁺ (αβ with α = 1, β = 0): z = W⁺ᵀa⁺ + W⁻ᵀa⁻ + b⁺."""

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = stabilizer

    split = True

    def relevance(self, a, R, layer, z):
        w = layer.weight
        return _signed(a, R, layer, _plus(w), _minus(w), _plus(layer.bias),
                       self.stabilizer)

    def relevance_split(self, a, R, layer, p, n):      # z = W⁺ᵀa + b⁺
        z = p if layer.bias is None else p + layer.per_channel(_plus(layer.bias), p)
        return a * layer.gradient(a, R / stabilize(z, self.stabilizer), _plus(layer.weight))


class AlphaBeta(LRPRule):
    """LRP-αβ: R = α·(positive contributions' share) − β·(negative contributions' share), α − β = 1."""

    def __init__(self, alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6):
        self.alpha, self.beta, self.stabilizer = alpha, beta, stabilizer

    def relevance(self, a, R, layer, z):
        w, b, negative = layer.weight, layer.bias, bool((a < 0).any())
        wp, wn = _plus(w), _minus(w)
        positive = _signed(a, R * self.alpha, layer, wp, wn, _plus(b), self.stabilizer, negative)
        if self.beta == 0:
            return positive
        return positive - _signed(a, R * self.beta, layer, wn, wp, _minus(b), self.stabilizer, negative)

    split = True

    def relevance_split(self, a, R, layer, p, n):      # z⁺ = W⁺ᵀa + b⁺, z⁻ = W⁻ᵀa + b⁻
        w, b, eps = layer.weight, layer.bias, self.stabilizer
        if b is not None:
            p, n = p + layer.per_channel(_plus(b), p), n + layer.per_channel(_minus(b), n)
        pairs = [(R * self.alpha / stabilize(p, eps), _plus(w))]
        if self.beta != 0:
            pairs.append((R * -self.beta / stabilize(n, eps), _minus(w)))
        return a * layer.gradients(a, pairs)


class Gamma(LRPRule):
    """LRP-γ: weights w + γw⁺ favour positive contributions; outputs z > 0 and z < 0 handled apart."""

    needs_output = True

    def __init__(self, gamma: float = 0.25, stabilizer: float = 1e-6):
        self.gamma, self.stabilizer = gamma, stabilizer

    def relevance(self, a, R, layer, z):
        w, b, g = layer.weight, layer.bias, self.gamma
        up, down = w + g * w.clamp(min=0), w + g * w.clamp(max=0)
        b_up = None if b is None else b + g * b.clamp(min=0)
        b_down = None if b is None else b + g * b.clamp(max=0)
        negative = bool((a < 0).any())
        zero = torch.zeros((), dtype=R.dtype, device=R.device)
        return (_signed(a, torch.where(z > 0, R, zero), layer, up, down, b_up, self.stabilizer, negative)
                + _signed(a, torch.where(z < 0, R, zero), layer, down, up, b_down, self.stabilizer, negative))

    split = True

    def relevance_split(self, a, R, layer, p, n):
        """z_up = (1+γ)p + n + b + γb⁺ where z > 0, z_down = p + (1+γ)n + b + γb⁻ where z < 0;
        W_up s_up + W_down s_down = W⁺((1+γ)s_up + s_down) + W⁻(s_up + (1+γ)s_down)."""
        g, eps, b, w = self.gamma, self.stabilizer, layer.bias, layer.weight
        z = p + n                   # z = p + n + b; the biases b⁺, b⁻ go with p and n
        if b is not None:
            z += layer.per_channel(b, z)
        positive = z > 0            # where z > 0 the denominator is z_up = z + γp, where z < 0 z_down = z + γn
        if not bool(torch.where(positive, 0.0, R).any()):
            # no relevance where z ≤ 0 (the common case: a ReLU follows and passes none there): only
            # the z_up terms remain, W⁺(1+γ)s + W⁻s = (W + γW⁺)s, one backward call of the plain size.
            # z_up > 0 wherever R ≠ 0, so its stabiliser is + ε; elsewhere s = 0 / (a positive number)
            up = torch.add(z, p, alpha=g)
            if b is not None:
                up += layer.per_channel(g * b.clamp(min=0), up)
            s = R / up.clamp_(min=0).add_(eps)
            return a * layer.gradient(a, s, w + g * w.clamp(min=0))
        if b is not None:
            p, n = p + layer.per_channel(b.clamp(min=0), p), n + layer.per_channel(b.clamp(max=0), n)
        s = R / stabilize(z + g * torch.where(positive, p, n), eps)
        s = torch.where(z == 0, torch.zeros((), dtype=s.dtype, device=s.device), s)
        weighted = (1 + g) * s      # W_up s_up + W_down s_down = W⁺((1+γ)s_up + s_down) + W⁻(s_up + (1+γ)s_down)
        return a * layer.gradients(a, [(torch.where(positive, weighted, s), _plus(w)),
                                       (torch.where(positive, s, weighted), _minus(w))])


class ZBox(LRPRule):
    """LRP-z^B for inputs in [l, h]: z = Wᵀa − W⁺ᵀl − W⁻ᵀh, R = a⊙Ws − l⊙W⁺s − h⊙W⁻s (first layer)."""

    def __init__(self, low=0.0, high=1.0, stabilizer: float = 1e-6):
        self.low, self.high, self.stabilizer = low, high, stabilizer

    def relevance(self, a, R, layer, z):
        w = layer.weight
        # the terms [input, weights, sign]: a with W, and each bound that is not exactly 0 (a zero bound's
        # term vanishes: with the default low = 0 the W⁺ term is skipped)
        terms = [(a, w, 1.0)]
        for bound, part in ((self.low, w.clamp(min=0)), (self.high, w.clamp(max=0))):
            bound = torch.as_tensor(bound, dtype=a.dtype, device=a.device)
            if bool((bound != 0).any()):
                terms.append((bound.expand_as(a), part, -1.0))
        if layer.options.get("groups", 1) != 1 or len(terms) == 1:
            s = R / stabilize(sum(sign * layer(x, v) for x, v, sign in terms), self.stabilizer)
            return sum(sign * x * layer.gradient(a, s, v) for x, v, sign in terms)
        # the terms as one layer on the stacked inputs (along the input channels) with the stacked
        # weights [W, -W⁺, -W⁻]: one forward and one backward call
        d = 1 if layer.dim == 1 else -1
        stacked = torch.cat([x for x, _, _ in terms], dim=d)
        s = R / stabilize(layer(stacked, torch.cat([sign * v for _, v, sign in terms], dim=1)), self.stabilizer)
        c = layer.gradient(stacked, s, torch.cat([v for _, v, _ in terms], dim=1)).chunk(len(terms), dim=d)
        return sum(sign * x * ci for (x, _, sign), ci in zip(terms, c))


class Flat(LRPRule):
    """LRP-flat: every input gets an equal share of each output it feeds (w = 1, a = 1, no bias)."""

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = stabilizer

    def relevance(self, a, R, layer, z):
        w, ones = torch.ones_like(layer.weight), torch.ones_like(a)
        return layer.gradient(a, R / stabilize(layer(ones, w), self.stabilizer), w)


class WSquare(LRPRule):
    """LRP-w²: shares proportional to w² (inputs ignored; zennit also squares the bias)."""

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = stabilizer

    def relevance(self, a, R, layer, z):
        w, b = layer.weight ** 2, None if layer.bias is None else layer.bias ** 2
        return layer.gradient(a, R / stabilize(layer(torch.ones_like(a), w, b), self.stabilizer), w)
