"""Pixel perturbation (lab 14): remove the pixels an explanation ranks first and watch the model.

An explanation ranks the pixels of an image (its attributions summed over channels); removing the
``k = round(fraction · H · W)`` first pixels (every channel at one position ``(h, w)``, replaced by a
fill value) and running the model on what is left measures how much the model needed them:

- :func:`rank_pixels`: the order in which pixels go, ``"most"`` salient first, ``"least"`` first or
  ``"random"`` (seeded);
- :func:`fill_values`: what a removed pixel becomes: ``"black"`` (0.0), ``"mean"`` (each image's
  per-channel mean), a number or a tensor;
- :func:`perturb`: one perturbed copy of each image;
- :func:`perturbed_outputs`: the model on every fraction of every image, batched through the
  masked-evaluation engine of the perturbation methods (:func:`xai_course.attribution.masking.evaluate`),
  so ``F`` fractions of ``N`` images cost ``N·F`` forward passes in as few batches as memory allows.
"""
from __future__ import annotations

from numbers import Real
from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..attribution._core import check_call, check_inputs, check_int, check_model, make_generator
from ..attribution.masking import evaluate
from .localisation import pixel_map

ORDERS = ("most", "least", "random")
FILLS = ("black", "mean")
Fill = Union[str, float, torch.Tensor]


def check_fraction(fraction, name: str = "fraction") -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, Real) or not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1] (the share of pixels removed), got {fraction!r}")
    return float(fraction)


def check_fractions(fractions) -> torch.Tensor:
    """A non-empty sequence (or 1-D tensor) of fractions in [0, 1], as a float64 tensor (F,)."""
    if isinstance(fractions, torch.Tensor) or type(fractions).__module__ == "numpy":   # a tensor or an array
        fractions = torch.as_tensor(fractions).detach().cpu().flatten().tolist()
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Sequence) or len(fractions) == 0:
        raise ValueError(f"fractions must be a non-empty sequence of numbers in [0, 1], got {fractions!r}")
    return torch.tensor([check_fraction(f, "fractions[i]") for f in fractions], dtype=torch.float64)


def pixels_removed(fraction: float, height: int, width: int) -> int:
    """``k = round(fraction · H · W)``: how many pixels a fraction removes (Python's round)."""
    return int(round(fraction * height * width))


def _check_attributions(inputs: torch.Tensor, attributions) -> torch.Tensor:
    if inputs.ndim != 4:
        raise ValueError(f"inputs must be images (N, C, H, W), got shape {tuple(inputs.shape)}")
    a = pixel_map(attributions)
    if a.shape[0] != inputs.shape[0] or a.shape[1:] != inputs.shape[2:] or attributions.shape[1] not in (
            1, inputs.shape[1]):
        raise ValueError(f"attributions must be (N, C, H, W) or (N, 1, H, W) with N, C, H, W = "
                         f"{inputs.shape[0]}, {inputs.shape[1]}, {inputs.shape[2]}, {inputs.shape[3]} like the inputs, "
                         f"got shape {tuple(attributions.shape)}")
    if not torch.isfinite(a).all():
        raise ValueError("attributions must be finite (no NaN or infinity)")
    return a.to(inputs.device)


def rank_pixels(attributions: torch.Tensor, order: str = "most", seed: Optional[int] = None) -> torch.Tensor:
    """The pixels in the order they are removed: a LongTensor ``(N, H·W)`` of flat indices ``h·W + w``.

    ``attributions`` ``(N, C, H, W)`` or ``(N, 1, H, W)`` are summed over channels (signed). ``order``:
    ``"most"`` (largest attribution first), ``"least"`` (smallest first) or ``"random"`` (a random
    permutation per image, from a generator seeded with ``seed``; the global one if ``seed`` is None).
    Ties keep pixel order (a stable sort), so the ranking does not depend on the machine.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(map(repr, ORDERS))}, got {order!r}")
    a = pixel_map(attributions).flatten(1)
    if order == "random":
        gen = make_generator(seed, "cpu")
        return torch.stack([torch.randperm(a.shape[1], generator=gen) for _ in range(a.shape[0])]).to(a.device)
    return a.argsort(dim=1, descending=(order == "most"), stable=True)


def fill_values(inputs: torch.Tensor, fill: Fill = "black") -> torch.Tensor:
    """What a removed pixel becomes, shaped like ``inputs`` ``(N, C, H, W)``.

    ``"black"``: 0.0 (not each image's minimum, as in Quantus); ``"mean"``: each image's mean per
    channel; a number; or a tensor broadcastable to ``inputs`` (e.g. a blurred copy), where a 1-D tensor
    of C values is one value per channel, as ``(1, C, 1, 1)``.
    """
    if isinstance(fill, str):
        if fill == "black":
            return torch.zeros_like(inputs)
        if fill == "mean":
            return inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs)
        raise ValueError(f"fill must be 'black', 'mean', a number or a tensor, got {fill!r}")
    if isinstance(fill, torch.Tensor):
        if fill.ndim == 1 and fill.numel() == inputs.shape[1] > 1:     # one value per channel
            fill = fill.view(1, -1, 1, 1)
        try:
            out = torch.broadcast_to(fill.to(inputs), inputs.shape)
        except RuntimeError:
            raise ValueError(f"fill must broadcast to the inputs' shape {tuple(inputs.shape)}, got shape "
                             f"{tuple(fill.shape)}") from None
        if not torch.isfinite(out).all():
            raise ValueError("fill must be finite")
        return out
    if isinstance(fill, bool) or not isinstance(fill, Real) or not torch.isfinite(torch.tensor(float(fill))):
        raise ValueError(f"fill must be 'black', 'mean', a finite number or a tensor, got {fill!r}")
    return torch.full_like(inputs, float(fill))


def _removal_ranks(ranking: torch.Tensor, shape) -> torch.Tensor:
    """``position[n, h, w]``: where pixel (h, w) comes in image n's removal order (0 = first)."""
    position = torch.empty_like(ranking)
    position.scatter_(1, ranking, torch.arange(ranking.shape[1], device=ranking.device).expand_as(ranking))
    return position.view(shape[0], 1, shape[2], shape[3])


def perturb(inputs: torch.Tensor, attributions: torch.Tensor, fraction: float, order: str = "most",
            fill: Fill = "black", seed: Optional[int] = None) -> torch.Tensor:
    """The inputs with their first ``k = round(fraction · H · W)`` pixels (in ``order``) replaced by ``fill``.

    A pixel is all channels at one position; exactly k pixels of every image change to the fill
    value (a pixel already equal to it stays equal). See :func:`rank_pixels` and :func:`fill_values`.
    """
    check_inputs(inputs)
    fraction = check_fraction(fraction)
    a = _check_attributions(inputs, attributions)
    k = pixels_removed(fraction, inputs.shape[2], inputs.shape[3])
    position = _removal_ranks(rank_pixels(a.unsqueeze(1), order, seed), inputs.shape)
    return torch.where(position >= k, inputs, fill_values(inputs, fill))


def perturbed_outputs(model: nn.Module, inputs: torch.Tensor, attributions: torch.Tensor, fractions,
                      *, target=None, order: str = "most", fill: Fill = "black", seed: Optional[int] = None,
                      output: str = "probabilities", batch_size: Optional[int] = None) -> torch.Tensor:
    """The model on ``perturb(inputs, attributions, f, order, fill, seed)`` for every f in ``fractions``.

    Returns ``(N, F)`` for ``output="target"`` (the target logit; needs ``target``) or ``(N, F, classes)``
    for ``"logits"`` and ``"probabilities"`` (softmax). Every image is ranked once; the ``N·F``
    perturbed copies are evaluated ``batch_size`` at a time (default: the engine's, about 1 MB of inputs),
    and only one batch of them exists at once. The model is put in eval mode for the call and left
    as it was.
    """
    if output == "target":
        model, inputs, target = check_call(model, inputs, target)
    else:
        check_model(model)
        check_inputs(inputs)
    fractions = check_fractions(fractions)
    a = _check_attributions(inputs, attributions)
    height, width = inputs.shape[2], inputs.shape[3]
    k = torch.tensor([pixels_removed(float(f), height, width) for f in fractions], device=inputs.device)
    position = _removal_ranks(rank_pixels(a.unsqueeze(1), order, seed), inputs.shape)

    def keep(example, row):  # copy (n, s) keeps the pixels after the first k_s in image n's order
        return position[example] >= k[row].view(-1, 1, 1, 1)

    return evaluate(model, inputs, target, fill_values(inputs, fill), keep, len(k), batch_size, output)


# ---------------------------------------------------------------- the lab's metrics (helper pp)
def pixel_perturbation(model: nn.Module, inputs: torch.Tensor, target,
                       attributions: torch.Tensor, fractions, order: str = "most",
                       fill: Fill = "black", seed: Optional[int] = None,
                       batch_size: Optional[int] = None) -> dict:
    """The pixel-perturbation (PP) metrics of report 001 (Srinivas & Fleuret, 2019): dict of ``(F, N)``.

    For every fraction f, ``x_k = perturb(x, attributions, f, order, fill, seed)`` (k = round(f·H·W)
    pixels replaced). With ``z`` the logits, ``p = softmax(z)`` and ``t`` the target class:

    - ``"afoc"``: |p_t(x_k) − p_t(x)| / p_t(x), the absolute fractional output change;
    - ``"kl"``: KL(P_k ‖ Q) = Σ_c P_k(c) log(P_k(c) / Q(c)) with P_k = p(x_k), the softmax on the
      perturbed input, and Q = p(x), the softmax on the original (the report's eq. 5, in that order);
    - ``"pcuo"``: |z_t(x_k) − z_t(x)| / |z_t(x)|, the change of the unnormalised output (logit);
    - ``"pcuo_others"``: the same, averaged over the classes c ≠ t (the report's Figure 4);
    - ``"afoc_others"``: |p_c(x_k) − p_c(x)| / p_c(x) averaged over the classes c ≠ t, AFOC for the
      other classes as the report averages PCUO over them (KL has no such variant: it is one number
      for the whole distribution, the predicted class and the others together);
    - ``"entropy"``: H(P_k) = −Σ_c P_k(c) log P_k(c) in nats, how undecided the model is on x_k;
    - ``"predicted"``: long, argmax_c z_c(x_k), the class the model gives the perturbed image;
    - ``"correct"``: bool, argmax_c z_c(x_k) == t.

    ``order="most"`` is the original scheme (most salient removed: large is good), ``"least"`` the
    augmented one (least salient removed: small is good). A ratio whose denominator is 0 is inf (or nan).
    All fractions of all images (and the originals, as fraction 0) go through one
    :func:`perturbed_outputs` call. Metrics are computed in float64 and returned in the inputs' dtype.
    """
    model, inputs, target = check_call(model, inputs, target)
    fractions = [0.0] + check_fractions(fractions).tolist()      # 0: the originals
    z = perturbed_outputs(model, inputs, attributions, fractions, order=order,
                          fill=fill, seed=seed, output="logits",
                          batch_size=batch_size).double()  # (N, 1+F, C)
    _check_target(target, z.shape[2])
    z0, zk = z[:, :1], z[:, 1:]
    log_q, log_p = z0.log_softmax(2), zk.log_softmax(2)          # log Q, log P_k
    t = target.view(-1, 1, 1).expand(-1, zk.shape[1], 1)
    p0_t, pk_t = log_q.exp().gather(2, t[:, :1]), log_p.exp().gather(2, t)
    change = (zk - z0).abs() / z0.abs()                          # every class's PCUO
    fractional = (log_p.exp() - log_q.exp()).abs() / log_q.exp()  # every class's AFOC
    others = torch.ones_like(zk, dtype=torch.bool).scatter(2, t, False)
    n_others = max(1, z.shape[2] - 1)
    metrics = {
        "afoc": ((pk_t - p0_t).abs() / p0_t)[..., 0],
        "kl": (log_p.exp() * (log_p - log_q)).sum(2),
        "pcuo": change.gather(2, t)[..., 0],
        "pcuo_others": (change * others).sum(2) / n_others,
        "afoc_others": (fractional * others).sum(2) / n_others,
        "entropy": -(log_p.exp() * log_p).sum(2),
    }
    out = {k: v.to(inputs.dtype).T.contiguous() for k, v in metrics.items()}
    predicted = zk.argmax(2)
    out["predicted"] = predicted.T.contiguous()
    out["correct"] = (predicted == target[:, None]).T.contiguous()
    return out


def _check_target(target: torch.Tensor, classes: int) -> None:
    if ((target < 0) | (target >= classes)).any():
        raise ValueError(f"target must be class indices in [0, {classes - 1}] (the model has "
                         f"{classes} outputs), got {target.tolist()}")


def insertion_deletion(model: nn.Module, inputs: torch.Tensor, target,
                       attributions: torch.Tensor, steps: int = 50, fill: Fill = "black",
                       batch_size: Optional[int] = None):
    """Insertion and deletion AUCs (Petsiuk et al., 2018, RISE; slides 002): ``(insertion, deletion)``, each (N,).

    The fraction axis f = 0, 1/steps, ..., 1. Deletion: the target-class softmax probability of
    ``perturb(x, a, f, "most", fill)`` (the top f·H·W pixels removed, most salient first); a faithful map
    makes it drop fast, so *lower is better*. Insertion: start from the fill image and put back the
    top f·H·W pixels of x, most salient first; a faithful map makes the probability rise fast, so
    *higher is better*. (Slide 002 says insertion goes "least relevant first"; RISE inserts the most
    relevant first, as here.) Each AUC is the trapezoid rule over f in [0, 1], so it lies in [0, 1].
    Two :func:`perturbed_outputs` calls: insertion is deletion with the roles of x and the fill swapped.
    """
    model, inputs, target = check_call(model, inputs, target)
    steps = check_int(steps, "steps")
    fractions = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    background = fill_values(inputs, fill).detach()
    curves = []
    # insertion: from the background, "remove" pixels into x; deletion: the reverse
    for start, put_back in ((background, inputs), (inputs, background)):
        p = perturbed_outputs(model, start, attributions, fractions, order="most",
                              fill=put_back, output="probabilities",
                              batch_size=batch_size)              # (N, F, classes)
        _check_target(target, p.shape[2])
        t = target.view(-1, 1, 1).expand(-1, p.shape[1], 1)
        curves.append(p.double().gather(2, t)[..., 0])            # p_t along f
    f = fractions.to(inputs.device)
    return tuple(torch.trapezoid(c, f, dim=1).to(inputs.dtype) for c in curves)


def faithfulness_correlation(model: nn.Module, inputs: torch.Tensor, target, attributions: torch.Tensor,
                             subset_size: Optional[int] = None, samples: int = 100, fill: Fill = "black",
                             seed: Optional[int] = None, batch_size: Optional[int] = None,
                             output: str = "logit") -> torch.Tensor:
    """Faithfulness correlation (Bhatt et al., 2020; slides 002, after Melis & Jaakkola, 2018): (N,).

    For s = 1..``samples``, draw a random subset S_s of ``subset_size`` pixels (uniformly, without
    replacement; a pixel is all channels at one position; None: 5% of the pixels), replace it by
    ``fill`` and record Δ_s = f_t(x) − f_t(x with S_s replaced) and R_s = Σ_{i ∈ S_s} a_i (the
    attributions summed over channels). The score is the Pearson correlation ρ(R, Δ) over the
    samples (:func:`xai_course.evaluation.similarity.pearson`; 0 where either is constant).
    ``output``: ``"logit"`` (f_t is the target logit, as Quantus' default) or ``"probability"``.
    Subsets come from a ``torch.Generator`` seeded with ``seed``: same seed, same subsets.
    """
    from .similarity import pearson
    model, inputs, target = check_call(model, inputs, target)
    if output not in ("logit", "probability"):
        raise ValueError(f"output must be 'logit' or 'probability', got {output!r}")
    samples = check_int(samples, "samples", minimum=2)
    a = _check_attributions(inputs, attributions).flatten(1)
    n, hw = a.shape
    if subset_size is None:
        subset_size = max(1, round(0.05 * hw))
    subset_size = check_int(subset_size, "subset_size")
    if subset_size > hw:
        raise ValueError(f"subset_size must be at most the number of pixels H·W = {hw}, got {subset_size}")
    gen = make_generator(seed, "cpu")
    # the subset_size largest of H·W uniform numbers: a uniformly random subset (topk beats a full sort)
    subsets = torch.rand(n, samples, hw, generator=gen).topk(subset_size, dim=2).indices.to(inputs.device)
    removed = torch.zeros(n, samples, hw, dtype=torch.bool, device=inputs.device).scatter_(2, subsets, True)
    removed = torch.cat([torch.zeros_like(removed[:, :1]), removed], 1)   # row 0: the original
    removed = removed.view(n, samples + 1, 1, *inputs.shape[2:])

    def keep(example, row):
        return ~removed[example, row]

    mode = "target" if output == "logit" else "probabilities"
    y = evaluate(model, inputs, target, fill_values(inputs, fill), keep, samples + 1, batch_size, mode)
    if mode == "probabilities":
        y = y.gather(2, target.view(-1, 1, 1).expand(-1, samples + 1, 1))[..., 0]
    deltas = y[:, :1].double() - y[:, 1:].double()
    sums = a.double().gather(1, subsets.flatten(1)).view(n, samples, subset_size).sum(2)
    return pearson(sums, deltas).to(inputs.dtype)
