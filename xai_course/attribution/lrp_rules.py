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

import math

import torch
from torch.nn.modules.utils import _ntuple

from ._core import fast_layout

Tensor = torch.Tensor
STACK_BYTES = 32 << 20     # glibc's largest mmap threshold (see Layer.signed_parts)


def stabilize(z: Tensor, epsilon) -> Tensor:
    """z + ε·sign(z), sign(0) = +1: never crosses 0 (zennit's stabiliser).

    Computed as z + copysign(ε, z), one new tensor. Unlike zennit it gives
    −ε at z = −0.0; a sum is −0.0 only if all its terms are zeros (x + (−x)
    is +0.0), and then every a_j·w_jk is 0: that ε reaches no relevance.
    ``epsilon``: a number, or a tensor that broadcasts with z.
    """
    eps = torch.as_tensor(epsilon, dtype=z.dtype, device=z.device)
    return torch.copysign(eps, z).add_(z)


def divide(R: Tensor, z: Tensor, epsilon: float) -> Tensor:
    """s = R ⊘ z, stabilised by ε; with ε = 0 exact, and 0 where z = 0 (LRP-0)."""
    if epsilon == 0:
        return torch.where(z == 0, 0.0, R / z)
    den = stabilize(z, epsilon)
    return torch.div(R, den, out=den)


def layout(a: Tensor) -> torch.memory_format:
    """a's memory layout: channels-last for channels-last images, else contiguous."""
    if a.ndim == 4 and a.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def has_negative(a: Tensor) -> bool:
    """Whether a has an entry below 0 (one reduction, no tensor of a's size)."""
    return a.numel() > 0 and bool(a.amin() < 0)


class Layer:
    """One call ``y = function(a, weight, bias, **options)`` of F.linear or F.conv1d/2d/3d.

    A layer folded from a BatchNorm (:meth:`folded`) keeps its ``base`` (the layer before the fold) and
    the fold's factor σ per output channel: its weights are σW. Where every σ > 0 the split rules work
    on the base layer's weights and signed parts and move σ into the denominators (``shift``):
    W_f⁺ᵀ(R ⊘ (σq + c)) = W⁺ᵀ(R ⊘ (q + c/σ)), so a fold costs no weights of its own.

    The signed parts carry the rule's constants per output channel (:meth:`LRPRule.offsets`: the
    bias's parts, and for z⁺ and αβ the stabiliser), added by the convolution itself: the denominators
    come out of the forward pass ready, and a fold adds only what its constants differ by
    (:meth:`correction`).
    """

    def __init__(self, function, weight, bias, options: dict):
        self.function, self.options = function, options
        self._weight = None if weight is None else weight.detach()
        self.bias = None if bias is None else bias.detach()
        self.parts = None          # [W⁺ᵀa + c⁺; W⁻ᵀa + c⁻] from the forward pass, until a backward takes it
        self.source, self.scale = None, None   # the layer this one is folded from, and σ (see base)
        self._stacked, self._scaled = None, None

    @property
    def base(self) -> "Layer":
        """The layer whose weights and parts the split rules use: the one folded from, else itself
        (kept as None: a reference to itself would make a cycle that only the garbage collector frees,
        holding every tensor of the call until it runs)."""
        return self if self.source is None else self.source

    @property
    def weight(self) -> Tensor:
        if self._weight is None:   # a folded layer's own weights, made only if a rule asks for them
            index = (slice(None),) + (None,) * (self.base.weight.ndim - 1)
            self._weight = self.base.weight * self.scale[index]
        return self._weight

    @property
    def dim(self) -> int:
        """The output dimension that holds the channels (features for F.linear)."""
        return -1 if self.function is torch.nn.functional.linear else 1

    def per_channel(self, t: Tensor, like: Tensor) -> Tensor:
        shape = [1] * like.ndim
        shape[self.dim] = -1
        return t.view(shape)

    def constant(self, b, epsilon: float) -> Tensor:
        """(b + ε)/σ, one value per output channel (b: a bias or a part of it, or None)."""
        w = self.base.weight
        t = torch.full((w.shape[0],), float(epsilon), dtype=w.dtype, device=w.device)
        if b is not None:
            t += b
        return t if self.scale is None else t / self.scale

    def shift(self, b, epsilon: float, like: Tensor) -> Tensor:
        """(b + ε)/σ per output channel, shaped to add to ``like`` (b: a bias or a part of it, or None)."""
        return self.per_channel(self.constant(b, epsilon), like)

    def correction(self, rule: "LRPRule"):
        """What this layer's constants differ by from those its base's parts carry, a vector per part;
        None for the base layer itself (its parts carry its own)."""
        if self.source is None:
            return None
        return (rule.offsets(self) - rule.offsets(self.base)).chunk(rule.parts)

    @property
    def splits(self) -> bool:
        """Whether the split rules apply: the base layer has its signed parts, and the fold's σ > 0."""
        return self.base.parts is not None and (self.scale is None or bool((self.scale > 0).all()))

    def stacked_weight(self, a: Tensor, count: int = 2) -> Tensor:
        """[W⁺] (``count`` 1) or [W⁺; W⁻] along the output channels (groups = 1), made once: clamps into
        one buffer, in the layout the convolution wants for the input a (channels-last for channels-last
        images; a weight in another layout would be copied by every call that uses it)."""
        w, k = self.weight, self.weight.shape[0]
        if self._stacked is None or len(self._stacked) < count * k:
            self._stacked = torch.empty((count * k,) + w.shape[1:], dtype=w.dtype, device=w.device,
                                        memory_format=layout(a) if w.ndim == 4 else torch.contiguous_format)
            torch.clamp(w, min=0, out=self._stacked[:k])
            if count == 2:
                torch.clamp(w, max=0, out=self._stacked[k:])
        return self._stacked

    def scaled_weight(self, a: Tensor, alpha: float, beta: float) -> Tensor:
        """[αW⁺; −βW⁻], the stacked weights scaled (αβ's backward call), made once."""
        if self._scaled is None:
            w = self.stacked_weight(a)
            k = len(w) // 2
            self._scaled = torch.empty_like(w)
            torch.mul(w[:k], alpha, out=self._scaled[:k])
            torch.mul(w[k:], -beta, out=self._scaled[k:])
        return self._scaled

    def signed_weight(self, a: Tensor, positive: bool) -> Tensor:
        """W⁺ or W⁻ of the base layer."""
        base = self.base
        if base.options.get("groups", 1) != 1:
            return base.weight.clamp(min=0) if positive else base.weight.clamp(max=0)
        k = base.weight.shape[0]
        return base.stacked_weight(a, 1 if positive else 2)[:k] if positive else base.stacked_weight(a)[k:]

    def signed_parts(self, a: Tensor, rule: "LRPRule"):
        """[W⁺ᵀa + c⁺; W⁻ᵀa + c⁻] for a ≥ 0, with c the rule's constants (``rule.offsets``): what z⁺
        (one part: W⁺ᵀa + c⁺ only), αβ and γ divide by.

        One call with the stacked weights [W⁺; W⁻] and the constants as its bias, whose output is the
        parts stacked along the channels. Two calls, and the parts as a pair of tensors, for grouped
        convolutions and for stacked outputs over ``STACK_BYTES``: glibc's malloc serves blocks that
        large by a fresh mmap on every call, whose pages the kernel then faults in and zeroes one by
        one (measured on resnet18's first layer, 51 MB stacked: ~12,000 page faults a call).
        """
        offsets = rule.offsets(self)
        if rule.parts == 1:
            return (self(a, self.signed_weight(a, True), offsets),)
        if self.options.get("groups", 1) == 1:
            w = self.stacked_weight(a)
            if self.output_numel(a, w.shape[0]) * a.element_size() <= STACK_BYTES:
                return self(a, w, offsets)
            return tuple(self(a, half, c) for half, c in zip(w.chunk(2), offsets.chunk(2)))
        return tuple(self(a, w, c) for w, c in zip((self.weight.clamp(min=0), self.weight.clamp(max=0)),
                                                   offsets.chunk(2)))

    def output_numel(self, a: Tensor, channels: int) -> int:
        """The number of entries of the layer's output on a with ``channels`` output channels."""
        if self.function is torch.nn.functional.linear:
            return a.numel() // a.shape[-1] * channels
        o, d = self.options, a.ndim - 2
        kernel, n = self.weight.shape[2:], _ntuple(d)
        padding, stride, dilation = o.get("padding", 0), n(o.get("stride", 1)), n(o.get("dilation", 1))
        if padding == "same":
            spatial = a.shape[2:]
        else:
            padding = n(0 if padding == "valid" else padding)
            spatial = [(size + 2 * p - q * (k - 1) - 1) // s + 1
                       for size, p, q, k, s in zip(a.shape[2:], padding, dilation, kernel, stride)]
        return a.shape[0] * channels * math.prod(spatial)

    def take_parts(self, a: Tensor, rule: "LRPRule"):
        """The base layer's parts for one backward step, which may overwrite them: the first step takes
        the forward pass's tensor; a later one (a layer folded from the same one, a second backward
        pass) computes them again from a. Taking them, not copying, saves a tensor twice the output's
        size per layer; a BatchNorm's fold is usually the only step that runs."""
        base = self.base
        parts, base.parts = base.parts, None
        return base.signed_parts(a, rule) if parts is None else parts

    def halves(self, t):
        """The two halves (W⁺ part, W⁻ part) of parts or a signal: stacked, or already a pair."""
        return t if isinstance(t, tuple) else t.chunk(2, dim=self.dim)

    def gradients(self, a: Tensor, signal) -> Tensor:
        """W⁺s⁺ + W⁻s⁻ for the signal [s⁺; s⁻]: one backward call with the stacked weights if it is
        stacked, else one call per half."""
        if self.options.get("groups", 1) == 1 and not isinstance(signal, tuple):
            return self.gradient(a, signal, self.base.stacked_weight(a))
        up, down = self.halves(signal)
        return self.gradient(a, up, self.signed_weight(a, True)).add_(self.gradient(a, down, self.signed_weight(a, False)))

    def __call__(self, a: Tensor, w: Tensor, b=None) -> Tensor:
        return self.function(a, w, b, **self.options)

    def gradient(self, a: Tensor, s: Tensor, w: Tensor) -> Tensor:
        """c = W s: the layer's gradient with respect to its input a, applied to s (a new tensor)."""
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
        bias = shift if self.bias is None else self.bias * scale + shift
        folded = Layer(self.function, None, bias, self.options)
        folded.source, folded.scale, self.shared = self, scale, True
        return folded


def _plus(t):
    return None if t is None else t.clamp(min=0)


def _minus(t):
    return None if t is None else t.clamp(max=0)


class LRPRule:
    """``relevance(a, R, layer, z)``: the relevance of the inputs a; z is the layer's output if known.

    Rules that split the weights by sign (z⁺, αβ, γ) also have ``relevance_split(a, R, layer, parts)``
    for inputs a ≥ 0 (after a ReLU): ``parts`` = [W⁺ᵀa + c⁺; W⁻ᵀa + c⁻] of the base layer, computed in
    the forward pass in one convolution with stacked weights (instead of the layer's own and then two
    more), which the rule may overwrite. The constants c (``offsets``: the bias's parts b⁺ and b⁻,
    with the stabiliser for z⁺ and αβ) keep c⁺ + c⁻ = b, so the parts' sum is the layer's output.
    Signs known in advance (W⁺ᵀa ≥ 0 ≥ W⁻ᵀa) make each stabiliser a constant.
    """

    needs_output = False
    split = False
    parts = 2                       # how many signed parts relevance_split reads (z⁺: W⁺ᵀa only)

    def relevance(self, a: Tensor, R: Tensor, layer: Layer, z) -> Tensor:
        raise NotImplementedError

    def offsets(self, layer: Layer) -> Tensor:
        """The constants the parts carry, one per output channel and part, stacked (over σ for a fold)."""
        raise NotImplementedError


class Epsilon(LRPRule):
    """LRP-ε: R_j = Σ_k a_j w_jk / (z_k + ε·sign(z_k)) R_k (bias in z_k)."""

    needs_output = True

    def __init__(self, epsilon: float = 1e-6):
        self.epsilon = epsilon

    def relevance(self, a, R, layer, z):
        s = divide(R, z, self.epsilon)          # s = R ⊘ z (stabilised)
        c = layer.gradient(a, s, layer.weight)  # c = W s
        return c.mul_(a)                        # R = a ⊙ c


class Zero(Epsilon):
    """LRP-0: LRP-ε with ε = 0 (where z_k = 0, R_k is 0 too on ReLU nets and s_k is taken as 0)."""

    def __init__(self):
        super().__init__(0.0)


def _signed(a, R, layer, w_pos, w_neg, b, epsilon, negative=None):
    """a⁺ ⊙ W₁s + a⁻ ⊙ W₂s, with z = W₁ᵀa⁺ + W₂ᵀa⁻ + b (W₁ = w_pos).

    ``negative``: whether a has negative entries, if the caller knows (after
    a ReLU it has none: then a = a⁺ and the a⁻ terms are skipped, which saves
    two passes over a and two convolutions).
    """
    if negative is None:
        negative = has_negative(a)
    if not negative:
        s = divide(R, layer(a, w_pos, b), epsilon)
        return layer.gradient(a, s, w_pos).mul_(a)
    ap, an = a.clamp(min=0), a.clamp(max=0)
    s = divide(R, layer(ap, w_pos, b) + layer(an, w_neg), epsilon)
    return (layer.gradient(a, s, w_pos).mul_(ap)
            + layer.gradient(a, s, w_neg).mul_(an))


class ZPlus(LRPRule):
    """LRP-z⁺ (αβ with α = 1, β = 0): z = W⁺ᵀa⁺ + W⁻ᵀa⁻ + b⁺."""

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = stabilizer

    split, parts = True, 1

    def relevance(self, a, R, layer, z):
        w = layer.weight
        return _signed(a, R, layer, _plus(w), _minus(w), _plus(layer.bias),
                       self.stabilizer)

    def offsets(self, layer):
        # z = W⁺ᵀa + b⁺ ≥ 0 is stabilised by + ε: the part is z + ε
        return layer.constant(_plus(layer.bias), self.stabilizer)

    def relevance_split(self, a, R, layer, parts):
        (z,) = parts                          # W⁺ᵀa + b⁺ + ε
        change = layer.correction(self)       # a fold's own b⁺
        if change is not None:
            z.add_(layer.per_channel(change[0], z))
        s = torch.div(R, z, out=z)
        w = layer.signed_weight(a, True)
        return layer.gradient(a, s, w).mul_(a)


class AlphaBeta(LRPRule):
    """LRP-αβ: R = α·(positive contributions' share) − β·(negative contributions' share), α − β = 1."""

    def __init__(self, alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6):
        self.alpha, self.beta, self.stabilizer = alpha, beta, stabilizer

    def relevance(self, a, R, layer, z):
        w, b, negative = layer.weight, layer.bias, has_negative(a)
        wp, wn = _plus(w), _minus(w)
        positive = _signed(a, R * self.alpha, layer, wp, wn, _plus(b), self.stabilizer, negative)
        if self.beta == 0:
            return positive
        return positive - _signed(a, R * self.beta, layer, wn, wp, _minus(b), self.stabilizer, negative)

    split = True

    def offsets(self, layer):
        """The parts are z⁺ + ε and z⁻ − ε (z⁺ = W⁺ᵀa + b⁺ ≥ 0 ≥ z⁻ = W⁻ᵀa + b⁻): b⁺ + ε and b⁻ − ε."""
        b, eps = layer.bias, self.stabilizer
        return torch.cat([layer.constant(_plus(b), eps), layer.constant(_minus(b), -eps)])

    def relevance_split(self, a, R, layer, parts):
        """The signal [R ⊘ (z⁺ + ε); R ⊘ (z⁻ − ε)], the parts divided in place, for the stacked weights
        [αW⁺; −βW⁻]: one division per half (on the halves: a division broadcast over a stacked view
        runs several times slower). A fold's parts (or a pair) take [W⁺; W⁻] and the factors in the
        denominators, each half shifted and scaled in one multiply-add: (z⁺ + ε)/α, (z⁻ − ε)/(−β)."""
        alpha, beta = self.alpha, self.beta
        p, n = layer.halves(parts)
        change = layer.correction(self)
        scaled = change is None and not isinstance(parts, tuple)
        if not scaled:
            for half, d, factor in ((p, None if change is None else change[0], alpha),
                                    (n, None if change is None else change[1], -beta)):
                if factor == 0:
                    half.fill_(torch.inf)                       # β = 0: no s⁻
                elif d is None:
                    half.div_(factor)
                else:
                    torch.add(layer.per_channel(d / factor, half), half, alpha=1 / factor, out=half)
        torch.div(R, p, out=p)
        torch.div(R, n, out=n)
        if scaled:
            return layer.gradient(a, parts, layer.scaled_weight(a, alpha, beta)).mul_(a)
        return layer.gradients(a, parts).mul_(a)


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
        negative = has_negative(a)
        zero = torch.zeros((), dtype=R.dtype, device=R.device)
        return (_signed(a, torch.where(z > 0, R, zero), layer, up, down, b_up, self.stabilizer, negative)
                + _signed(a, torch.where(z < 0, R, zero), layer, down, up, b_down, self.stabilizer, negative))

    split = True

    def offsets(self, layer):
        """The parts carry the bias's parts: p = W⁺ᵀa + b⁺, n = W⁻ᵀa + b⁻, and z = p + n is the layer's
        output as the forward pass computed it. The stabiliser goes into the denominators instead:
        ±ε/γ in the parts would cost z its exactness where W⁺ᵀa ≈ −W⁻ᵀa (in float32 p + n is then
        exact), and with it the sign that chooses between z_up and z_down (measured on resnet18: 20x
        the float32 error)."""
        b = layer.bias
        return torch.cat([layer.constant(_plus(b), 0.0), layer.constant(_minus(b), 0.0)])

    def relevance_split(self, a, R, layer, parts):
        """z_up + ε = (1+γ)p + n + ε where z > 0, z_down − ε = p + (1+γ)n − ε where z < 0, z = p + n
        (p, n: the halves of the parts; every term over σ for a folded layer, whose own biases differ
        from the parts' by ``change``)."""
        g, eps = self.gamma, self.stabilizer
        p, n = layer.halves(parts)
        change = layer.correction(self)

        def output(out=None):           # z = p + n, and a fold's own bias
            z = torch.add(p, n, out=out)
            return z if change is None else z.add_(layer.per_channel(change[0] + change[1], z))

        z = output()
        # whether any relevance sits where z ≤ 0, in place: z becomes [z ≤ 0]·R
        if not bool(torch.le(z, 0, out=z).mul_(R).any()):
            # none (the common case: a ReLU follows and passes none there): only the z_up terms remain,
            # W⁺(1+γ)s + W⁻s = (W + γW⁺)s, one backward call of the plain size. z_up ≥ z > 0 wherever
            # R ≠ 0, so its stabiliser is + ε; elsewhere s = 0 / (ε or more)
            stabiliser = layer.constant(None, eps)
            constant = stabiliser if change is None else stabiliser + (1 + g) * change[0] + change[1]
            den = torch.add(n, p, alpha=1 + g, out=z).add_(layer.per_channel(constant, z))
            den = torch.maximum(den, layer.per_channel(stabiliser, den), out=den)
            s = torch.div(R, den, out=den)
            return layer.gradient(a, s, torch.add(layer.signed_weight(a, False), layer.signed_weight(a, True),
                                                  alpha=1 + g)).mul_(a)
        z = output(out=z)
        positive = z > 0
        if g > 0:
            # z + γ(p + ε/γ) = z_up + ε where z > 0, z + γ(n − ε/γ) = z_down − ε where z < 0: the parts
            # shifted in place (by a fold's own biases too), one choice between them, one multiply-add
            shift = layer.constant(None, eps / g)
            p.add_(layer.per_channel(shift if change is None else shift + change[0], p))
            n.add_(layer.per_channel(-shift if change is None else change[1] - shift, n))
            den = torch.where(positive, p, n)
            den = torch.add(z, den, alpha=g, out=den)
        else:                       # γ = 0: z_up = z_down = z
            den = stabilize(z, layer.shift(None, eps, z))
        s = torch.div(R, den, out=den).masked_fill_(z == 0, 0.0)
        # W_up s_up + W_down s_down = W⁺((1+γ)s_up + s_down) + W⁻(s_up + (1+γ)s_down)
        weighted, (up, down) = s * (1 + g), layer.halves(parts)
        torch.where(positive, weighted, s, out=up)
        torch.where(positive, s, weighted, out=down)
        return layer.gradients(a, parts).mul_(a)


class ZBox(LRPRule):
    """LRP-z^B for inputs in [l, h]: z = Wᵀa − W⁺ᵀl − W⁻ᵀh, R = a⊙Ws − l⊙W⁺s − h⊙W⁻s (first layer)."""

    def __init__(self, low=0.0, high=1.0, stabilizer: float = 1e-6):
        self.low, self.high, self.stabilizer = low, high, stabilizer

    def relevance(self, a, R, layer, z):
        w = layer.weight
        # the bound terms [bound, weights]: each bound that is not exactly 0 (a zero bound's term vanishes:
        # with the default low = 0 the W⁺ term is skipped)
        bounds = []
        for bound, part in ((self.low, w.clamp(min=0)), (self.high, w.clamp(max=0))):
            bound = torch.as_tensor(bound, dtype=a.dtype, device=a.device)
            if bool((bound != 0).any()):
                bounds.append((bound, part))
        # z = Wᵀa − W⁺ᵀl − W⁻ᵀh. A bound's term does not depend on the input: for a bound shared by all
        # examples (a number, or a tensor without a batch of its own) one example's worth is computed.
        # (Wᵀa is computed again rather than kept from the forward pass: a kept copy of the first
        # layer's output made the call slower where memory was short, measured with zennit between calls)
        z = layer(a, w)
        for bound, part in bounds:
            shared = bound.ndim < a.ndim or bound.shape[0] == 1
            z -= layer(bound.expand_as(a[:1] if shared else a).contiguous(memory_format=fast_layout(a)), part)
        s = divide(R, z, self.stabilizer)
        if not bounds:
            return layer.gradient(a, s, w).mul_(a)
        if layer.options.get("groups", 1) != 1:
            relevance = layer.gradient(a, s, w).mul_(a)
            for bound, part in bounds:
                relevance -= layer.gradient(a, s, part) * bound
            return relevance
        # W s and each bound's W± s in one backward call: the weights [W, W⁺, W⁻] stacked along the
        # input channels. The call reads only the shape and layout of its input: an empty tensor's
        d = 1 if layer.dim == 1 else -1
        shape = list(a.shape)
        shape[d] *= 1 + len(bounds)
        stacked = torch.empty(shape, dtype=a.dtype, device=a.device, memory_format=layout(a))
        weights = torch.cat([w] + [part for _, part in bounds], dim=1)
        c = layer.gradient(stacked, s, weights).chunk(1 + len(bounds), dim=d)
        relevance = c[0].mul_(a)
        for (bound, _), ci in zip(bounds, c[1:]):
            if bound.ndim == 0:
                relevance.sub_(ci, alpha=bound.item())
            else:
                relevance -= ci * bound
        return relevance


class Flat(LRPRule):
    """LRP-flat: every input gets an equal share of each output it feeds (w = 1, a = 1, no bias)."""

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = stabilizer

    def relevance(self, a, R, layer, z):
        w, ones = torch.ones_like(layer.weight), torch.ones_like(a)
        return layer.gradient(a, divide(R, layer(ones, w), self.stabilizer), w)


class WSquare(LRPRule):
    """LRP-w²: shares proportional to w² (inputs ignored; zennit also squares the bias)."""

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = stabilizer

    def relevance(self, a, R, layer, z):
        w, b = layer.weight ** 2, None if layer.bias is None else layer.bias ** 2
        return layer.gradient(a, divide(R, layer(torch.ones_like(a), w, b), self.stabilizer), w)
