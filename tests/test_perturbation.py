"""Pixel perturbation, insertion/deletion and faithfulness correlation (lab 14): known answers by hand,
Quantus 0.6 parity where the definitions coincide, seeds, hygiene and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from xai_course.attribution.masking import cpu_workers
from xai_course.attribution._core import fast_layout
from xai_course.evaluation import (faithfulness_correlation, insertion_deletion, iou_top_k, perturb,
                                   perturbed_outputs, pixel_perturbation, pointing_game, rank_pixels,
                                   relevance_mass)

FRACTIONS = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]


def images(n=3, c=3, h=5, w=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g) + 0.1, torch.randn(n, c, h, w, generator=g)


def linear_model(d, classes=4, seed=0):
    """A tiny linear model: logits = W x + b (flattened); its outputs can be computed by hand."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, classes))
    return model.eval()


# ---------------------------------------------------------------- perturb: exactly k pixels, orders, fills
@pytest.mark.parametrize("fraction", FRACTIONS + [0.05, 0.15, 0.55])
@pytest.mark.parametrize("order", ["most", "least", "random"])
def test_exactly_k_pixels_change(fraction, order):
    x, a = images()
    k = int(round(fraction * 20))                      # Python's round: 0.05·20 = 1, 0.15·20 = 3 ...
    out = perturb(x, a, fraction, order=order, fill=-1.0, seed=3)
    changed = (out != x).any(1)                        # a pixel is all channels at one position
    assert changed.flatten(1).sum(1).tolist() == [k] * 3
    assert ((out == -1.0).all(1) == changed).all()     # every changed pixel changed in all channels
    if order != "random":                              # the k pixels with the largest/smallest sums
        s = a.sum(1).flatten(1)
        top = s.argsort(1, descending=(order == "most"))[:, :k]
        assert torch.equal(changed.flatten(1).gather(1, top).sum(1), torch.full((3,), k))


def test_rounding_of_k():
    x, a = images(h=1, w=10)                            # 10 pixels: 0.25·10 = 2.5 rounds to 2, 0.35·10 = 3.5 to 4
    assert (perturb(x, a, 0.25, fill=-1.0) == -1).all(1).sum().item() == 3 * 2
    assert (perturb(x, a, 0.35, fill=-1.0) == -1).all(1).sum().item() == 3 * 4


def test_orders_and_random_seed():
    a = torch.tensor([[3.0, -1.0, 5.0, 0.0]]).view(1, 1, 2, 2)
    assert rank_pixels(a, "most").tolist() == [[2, 0, 3, 1]]
    assert rank_pixels(a, "least").tolist() == [[1, 3, 0, 2]]
    r1, r2 = rank_pixels(a.expand(4, 1, 2, 2), "random", seed=1), rank_pixels(a.expand(4, 1, 2, 2), "random", seed=1)
    assert torch.equal(r1, r2) and sorted(r1[0].tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("fill", ["black", "mean", 0.5, "tensor"])
def test_fills(fill):
    x, a = images()
    value = {"black": torch.zeros_like(x), "mean": x.mean((2, 3), keepdim=True).expand_as(x),
             0.5: torch.full_like(x, 0.5), "tensor": torch.arange(3.0).view(1, 3, 1, 1).expand_as(x)}[fill]
    out = perturb(x, a, 0.5, fill=value[:1, :, :1, :1] if fill == "tensor" else fill)
    removed = rank_pixels(a, "most")[:, :10]
    for n in range(3):
        for p in removed[n].tolist():
            assert torch.equal(out[n, :, p // 4, p % 4], value[n, :, p // 4, p % 4])


# ---------------------------------------------------------------- AFOC, KL, PCUO by hand
def by_hand(model, x, target, a, fraction, order, fill):
    """The metrics of one fraction, computed from the definitions in float64 numpy."""
    n, c, h, w = x.shape
    k = int(round(fraction * h * w))
    s = a.sum(1).flatten(1).numpy()
    W, b = model[1].weight.detach().double().numpy(), model[1].bias.detach().double().numpy()
    rows = {"afoc": [], "kl": [], "pcuo": [], "pcuo_others": [], "afoc_others": [], "entropy": [],
            "predicted": [], "correct": []}
    for i in range(n):
        xi = x[i].double().numpy().copy()
        ranked = np.argsort(-s[i], kind="stable") if order == "most" else np.argsort(s[i], kind="stable")
        fv = np.zeros(c) if fill == "black" else xi.mean((1, 2))
        xk = xi.copy()
        for p in ranked[:k]:
            xk[:, p // w, p % w] = fv
        z0, zk = W @ xi.ravel() + b, W @ xk.ravel() + b
        q, pk = np.exp(z0) / np.exp(z0).sum(), np.exp(zk) / np.exp(zk).sum()
        t = int(target[i])
        rows["afoc"].append(abs(pk[t] - q[t]) / q[t])
        rows["kl"].append(float(np.sum(pk * np.log(pk / q))))
        change = np.abs(zk - z0) / np.abs(z0)
        rows["pcuo"].append(change[t])
        rows["pcuo_others"].append(np.delete(change, t).mean())
        rows["afoc_others"].append(np.delete(np.abs(pk - q) / q, t).mean())
        rows["entropy"].append(float(-np.sum(pk * np.log(pk))))
        rows["predicted"].append(int(np.argmax(zk)))
        rows["correct"].append(int(np.argmax(zk)) == t)
    return rows


@pytest.mark.parametrize("order", ["most", "least"])
@pytest.mark.parametrize("fill", ["black", "mean"])
def test_pp_metrics_by_hand_on_a_linear_model(order, fill):
    x, a = images()
    model = linear_model(x[0].numel())
    target = torch.tensor([0, 2, 3])
    got = pixel_perturbation(model, x, target, a, FRACTIONS, order=order, fill=fill)
    assert set(got) == {"afoc", "kl", "pcuo", "pcuo_others", "afoc_others", "entropy", "predicted", "correct"}
    for i, f in enumerate(FRACTIONS):
        expected = by_hand(model, x, target, a, f, order, fill)
        for name in ("afoc", "kl", "pcuo", "pcuo_others", "afoc_others", "entropy"):
            assert got[name].shape == (len(FRACTIONS), 3)
            # float32 logits of a 60-term dot product: relative error ~1e-6; ratios of differences amplify it
            np.testing.assert_allclose(got[name][i].numpy(), expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
        assert got["correct"][i].tolist() == expected["correct"]
        assert got["predicted"][i].tolist() == expected["predicted"]
    assert (got["afoc"][0] == 0).all() and (got["kl"][0].abs() < 1e-6).all()   # fraction 0 changes nothing


def test_other_classes_and_entropy_on_a_toy_worked_by_hand():
    """Three classes, z = (x_11 + x_22, 1, -1) on the 2 x 2 image (1, 2; 3, 4): removing the most
    salient pixel (x_22 = 4, black) takes the logits from (5, 1, -1) to (1, 1, -1)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]))
        model[1].bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    a = torch.tensor([[[[1.0, 0.0], [0.0, 4.0]]]])
    got = pixel_perturbation(model, x, 0, a, [0.25])
    e = math.e
    s0, s1 = e ** 5 + e + 1 / e, 2 * e + 1 / e
    q = [e ** 5 / s0, e / s0, 1 / e / s0]                 # softmax(5, 1, -1)
    p = [e / s1, e / s1, 1 / e / s1]                      # softmax(1, 1, -1)
    afoc_others = (abs(p[1] - q[1]) / q[1] + abs(p[2] - q[2]) / q[2]) / 2
    # both other classes gain the same factor s0 / s1 (their logits did not move)
    assert afoc_others == pytest.approx(s0 / s1 - 1)
    assert got["afoc_others"].item() == pytest.approx(afoc_others, rel=1e-5)
    assert got["afoc"].item() == pytest.approx(abs(p[0] - q[0]) / q[0], rel=1e-5)
    assert got["pcuo_others"].item() == pytest.approx(0.0, abs=1e-7)   # the other logits do not move
    assert got["entropy"].item() == pytest.approx(-sum(v * math.log(v) for v in p), rel=1e-5)
    assert got["predicted"].item() == 0 and got["correct"].item()      # tie 1 = 1: argmax takes the first


def test_kl_direction_is_perturbed_against_original():
    """KL(P_k || Q) with P_k the softmax on the perturbed input: differs from KL(Q || P_k) in general."""
    x, a = images(n=1)
    model = linear_model(x[0].numel(), seed=5)
    got = pixel_perturbation(model, x, 1, a, [0.5])["kl"][0, 0].item()
    with torch.no_grad():
        q = model(x).softmax(1)[0].double()
        p = model(perturb(x, a, 0.5)).softmax(1)[0].double()
    assert got == pytest.approx((p * (p / q).log()).sum().item(), rel=1e-4)
    assert got != pytest.approx((q * (q / p).log()).sum().item(), rel=1e-3)


def test_pp_one_model_pass_batch():
    x, a = images(n=4)
    model = linear_model(x[0].numel())
    fast_layout(x, model)     # the layout check (one example, once per model), made before counting
    calls = []
    model.register_forward_pre_hook(lambda m, i: calls.append(i[0].shape[0]))
    pixel_perturbation(model, x, 0, a, FRACTIONS)
    # originals and all fractions: one batch here, shared between the CPU workers (one pass each)
    assert sum(calls) == 4 * (len(FRACTIONS) + 1) and len(calls) == cpu_workers(x)


# ---------------------------------------------------------------- insertion / deletion: closed forms
class Counting(nn.Module):
    """Two classes; p_0 = (s + 1) / (S + 2) where s = Σ w_i x_i over one-channel inputs, S = Σ w_i.

    On an all-ones image with black fill, s counts the kept weight: p_0 is linear in it."""
    def __init__(self, w):
        super().__init__()
        self.register_buffer("w", w)

    def forward(self, x):
        s = (x[:, 0] * self.w).flatten(1).sum(1)
        total = self.w.sum()
        return torch.stack([torch.log(s + 1), torch.log(total - s + 1)], 1)


@pytest.mark.parametrize("steps", [2, 4, 16])
def test_insertion_deletion_closed_form(steps):
    # 16 pixels; the first 8 weigh 2, the rest 0; S = 16. Attributions = weights (ties keep pixel order).
    w = torch.tensor([2.0] * 8 + [0.0] * 8).view(4, 4)
    model, x = Counting(w).eval(), torch.ones(2, 1, 4, 4)
    # deletion: p falls linearly from 17/18 to 1/18 at f = 1/2, then stays: AUC = 1/4 + 1/36
    # insertion: p rises linearly from 1/18 to 17/18 at f = 1/2, then stays: AUC = 1/4 + 17/36
    a = torch.stack([w, w])[:, None]
    ins, dele = insertion_deletion(model, x, 0, a, steps=steps)
    torch.testing.assert_close(dele, torch.full((2,), 0.25 + 1 / 36), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ins, torch.full((2,), 0.25 + 17 / 36), rtol=1e-5, atol=1e-6)
    # the reversed map: deletion removes the zero-weight pixels first
    ins, dele = insertion_deletion(model, x, 0, -a, steps=steps)
    torch.testing.assert_close(dele, torch.full((2,), 0.25 + 17 / 36), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ins, torch.full((2,), 0.25 + 1 / 36), rtol=1e-5, atol=1e-6)


def test_insertion_deletion_constant_model_and_mean_fill():
    x, a = images()
    model = nn.Sequential(nn.Flatten(), nn.Linear(60, 3)).eval()
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
    p0 = torch.tensor([1.0, 0.0, -1.0]).softmax(0)[0].item()
    ins, dele = insertion_deletion(model, x, 0, a, steps=7, fill="mean")
    torch.testing.assert_close(ins, torch.full((3,), p0)), torch.testing.assert_close(dele, torch.full((3,), p0))


# ---------------------------------------------------------------- faithfulness correlation
class Additive(nn.Module):
    """Output 0 = Σ_pixels v · x (one channel): the drop when a subset goes black is Σ_S v_i x_i."""
    def __init__(self, v):
        super().__init__()
        self.register_buffer("v", v)

    def forward(self, x):
        s = (x[:, 0] * self.v).flatten(1).sum(1)
        return torch.stack([s, -s], 1)


def test_faithfulness_is_one_when_drops_equal_attribution_sums():
    g = torch.Generator().manual_seed(0)
    v, x = torch.randn(6, 6, generator=g), torch.rand(3, 1, 6, 6, generator=g) + 0.5
    a = v * x                                         # input × gradient is exact for a linear model
    r = faithfulness_correlation(Additive(v).eval(), x, 0, a, subset_size=5, samples=30, seed=0)
    torch.testing.assert_close(r, torch.ones(3), rtol=0, atol=1e-5)
    r = faithfulness_correlation(Additive(v).eval(), x, 0, -a, subset_size=5, samples=30, seed=0)
    torch.testing.assert_close(r, -torch.ones(3), rtol=0, atol=1e-5)


def test_faithfulness_seed():
    x, a = images(n=2, h=6, w=6)
    model = linear_model(x[0].numel())
    r1 = faithfulness_correlation(model, x, 1, a, subset_size=4, samples=20, seed=7)
    r2 = faithfulness_correlation(model, x, 1, a, subset_size=4, samples=20, seed=7)
    r3 = faithfulness_correlation(model, x, 1, a, subset_size=4, samples=20, seed=8)
    assert torch.equal(r1, r2) and not torch.equal(r1, r3)


# ---------------------------------------------------------------- Quantus 0.6 parity
quantus = pytest.importorskip("quantus")


def one_channel_case(n=3, size=6, seed=0):
    """One-channel images with minimum 0 (Quantus' "black" is each image's minimum), distinct attributions
    (Quantus' argsort is not stable), a small CNN in eval mode."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g)
    x[:, 0, 0, 0] = 0.0
    a = torch.randn(n, 1, size, size, generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * size * size, 3)).eval()
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y, a


@pytest.mark.filterwarnings("ignore")
def test_pixel_flipping_parity():
    """Black fill only: Quantus' "mean" is the mean of the already-perturbed image, recomputed at every
    step (it perturbs its running copy), so its curve is not the mean-fill curve of the report."""
    model, x, y, a = one_channel_case()
    fill = "black"
    step = 4                                          # 36 pixels: 9 steps of 4 pixels
    metric = quantus.PixelFlipping(features_in_step=step, perturb_baseline=fill, normalise=False, abs=False,
                                   disable_warnings=True, display_progressbar=False)
    curve = np.array(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                            device="cpu", softmax=True))        # (N, 9): p_y after 4, 8, ..., 36 pixels
    fractions = [step * (i + 1) / 36 for i in range(9)]
    ours = perturbed_outputs(model, x, a, fractions, fill=fill)[torch.arange(3), :, y].numpy()
    np.testing.assert_allclose(ours, curve, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        p0 = model(x).softmax(1)[torch.arange(3), y].numpy()
    afoc = pixel_perturbation(model, x, y, a, fractions, fill=fill)["afoc"].T.numpy()
    np.testing.assert_allclose(afoc, np.abs(curve - p0[:, None]) / p0[:, None], rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore")
def test_faithfulness_correlation_parity_given_the_same_subsets(monkeypatch):
    model, x, y, a = one_channel_case()
    subset, samples, seed = 5, 12, 3
    # our subsets, regenerated as faithfulness_correlation draws them, handed to Quantus' np.random.choice
    g = torch.Generator().manual_seed(seed)
    subsets = torch.rand(3, samples, 36, generator=g).topk(subset, dim=2).indices.numpy()
    queue = [subsets[i, s] for s in range(samples) for i in range(3)]   # Quantus: for each run, each image
    monkeypatch.setattr(quantus.metrics.faithfulness.faithfulness_correlation.np.random, "choice",
                        lambda n, size, replace=False: queue.pop(0))
    metric = quantus.FaithfulnessCorrelation(nr_runs=samples, subset_size=subset, perturb_baseline="black",
                                             normalise=False, abs=False, return_aggregate=False,
                                             disable_warnings=True, display_progressbar=False)
    expected = np.array(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                               device="cpu", softmax=False))
    assert not queue
    ours = faithfulness_correlation(model, x, y, a, subset_size=subset, samples=samples, seed=seed).numpy()
    # correlations of float32 logit differences: ~1e-6 relative error in each term
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore")
def test_pointing_game_and_relevance_mass_parity():
    model, x, y, a = one_channel_case(n=4, size=8)
    a = a.abs()                                        # non-negative maps: positive mass = all mass
    masks = torch.zeros(4, 1, 8, 8, dtype=torch.bool)
    masks[:, :, 2:6, 1:5] = True
    masks[1] = ~masks[1]
    kw = dict(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), s_batch=masks.numpy(),
              device="cpu")
    pg = quantus.PointingGame(normalise=False, abs=False, disable_warnings=True, display_progressbar=False)(**kw)
    rma = quantus.RelevanceMassAccuracy(normalise=False, abs=False, disable_warnings=True,
                                        display_progressbar=False)(**kw)
    assert pointing_game(a, masks).tolist() == [bool(v) for v in pg]
    np.testing.assert_allclose(relevance_mass(a, masks).numpy(), np.array(rma), rtol=1e-5)


@pytest.mark.filterwarnings("ignore")
def test_pointing_game_ties_at_the_maximum_hit_if_any_is_in_the_mask():
    mask = torch.tensor([[[[False, False], [False, True]]]])
    tied = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])           # the first maximum lies outside the mask
    assert pointing_game(tied, mask).tolist() == [True]
    assert pointing_game(torch.zeros(1, 1, 2, 2), mask).tolist() == [True]     # a constant map: all tied
    assert pointing_game(torch.zeros(1, 1, 2, 2), torch.zeros_like(mask)).tolist() == [False]
    kw = dict(model=nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), x_batch=np.ones((1, 1, 2, 2), np.float32),
              y_batch=np.array([0]), a_batch=tied.numpy(), s_batch=mask.numpy(), device="cpu")
    quantus_pg = quantus.PointingGame(normalise=False, abs=False, disable_warnings=True,
                                      display_progressbar=False)(**kw)
    assert [bool(v) for v in quantus_pg] == [True]


def test_a_fill_of_one_value_per_channel_and_fractions_from_numpy():
    x = torch.rand(2, 3, 4, 3)                               # W = C = 3: (C,) is per channel, not per column
    got = perturb(x, torch.rand(2, 1, 4, 3), 1.0, fill=torch.tensor([1.0, 2.0, 3.0]))
    assert (got == torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)).all()
    model, a = linear_model(36, classes=3), torch.rand(2, 1, 4, 3)
    as_list = pixel_perturbation(model, x, 0, a, [0.0, 0.5, 1.0])
    as_array = pixel_perturbation(model, x, 0, a, np.linspace(0, 1, 3))
    torch.testing.assert_close(as_array["afoc"], as_list["afoc"])


# ---------------------------------------------------------------- hygiene and bad input
def test_hygiene():
    x, a = images()
    model = nn.Sequential(nn.Flatten(), nn.Linear(60, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))
    model.eval()
    expected = pixel_perturbation(model, x, 1, a, [0.2, 0.6])
    model.train()
    x.requires_grad_(True)
    before, x_before = snapshot(model), inputs_snapshot(x)
    with pytest.warns(UserWarning, match="train mode"), torch.no_grad():
        got = pixel_perturbation(model, x, 1, a, [0.2, 0.6])
    with pytest.warns(UserWarning, match="train mode"):
        ins, dele = insertion_deletion(model, x, 1, a, steps=4)
        fc = faithfulness_correlation(model, x, 1, a, subset_size=3, samples=5, seed=0)
    assert_unchanged(before, snapshot(model))
    assert_inputs_unchanged(x_before, x)
    for name in ("afoc", "kl", "pcuo"):
        assert not got[name].requires_grad
        torch.testing.assert_close(got[name], expected[name])
    assert not (ins.requires_grad or dele.requires_grad or fc.requires_grad)


@pytest.mark.parametrize("call, match", [
    (lambda m, x, a: pixel_perturbation(m, x, 0, a, []), "fractions"),
    (lambda m, x, a: pixel_perturbation(m, x, 0, a, [1.5]), "fraction"),
    (lambda m, x, a: pixel_perturbation(m, x, 0, a, [0.5], order="top"), "order"),
    (lambda m, x, a: pixel_perturbation(m, x, 0, a, [0.5], fill="white"), "fill"),
    (lambda m, x, a: pixel_perturbation(m, x, 7, a, [0.5]), "target"),
    (lambda m, x, a: pixel_perturbation(m, x, 0, a[:, :, :2], [0.5]), "attributions"),
    (lambda m, x, a: pixel_perturbation(m, x, 0, a * float("nan"), [0.5]), "attributions"),
    (lambda m, x, a: insertion_deletion(m, x, 0, a, steps=0), "steps"),
    (lambda m, x, a: insertion_deletion(m, x, 9, a, steps=3), "target"),
    (lambda m, x, a: pixel_perturbation(m, x, -1, a, [0.5]), "target"),
    (lambda m, x, a: insertion_deletion(m, x, [0, -1, 1], a, steps=3), "target"),
    (lambda m, x, a: pixel_perturbation(m, x, 0, a[:, :2], [0.5]), "attributions"),   # 2 channels of 3
    (lambda m, x, a: iou_top_k(a, torch.ones(3, 1, 5, 4, dtype=torch.bool), fraction="x"), "fraction"),
    (lambda m, x, a: pointing_game(a, torch.ones(3, 1, 5, 5, dtype=torch.bool)), r"got shape \(3, 1, 5, 5\)"),
    (lambda m, x, a: faithfulness_correlation(m, x, 0, a, subset_size=100), "subset_size"),
    (lambda m, x, a: faithfulness_correlation(m, x, 0, a, samples=1), "samples"),
    (lambda m, x, a: faithfulness_correlation(m, x, 0, a, output="softmax"), "output"),
    (lambda m, x, a: faithfulness_correlation(m, x, 0, a, batch_size=0), "batch_size"),
])
def test_bad_input(call, match):
    x, a = images()
    model = linear_model(60, classes=3)
    with pytest.raises((ValueError, TypeError), match=match):
        call(model, x, a)


@pytest.mark.filterwarnings("ignore")
def test_pixel_flipping_parity_on_three_channels_at_whole_pixels():
    """Quantus flips channel values (the map spread over 3 channels), ``features_in_step`` a divisor of H*W:
    every third step ends on whole pixels, where its curve is ours with the image minimum as fill."""
    g = torch.Generator().manual_seed(4)
    x, a = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 1, 4, 4, generator=g)   # distinct values
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)).eval()
    with torch.no_grad():
        y = model(x).argmax(1)
    metric = quantus.PixelFlipping(features_in_step=4, perturb_baseline="black", normalise=False, abs=False,
                                   disable_warnings=True, display_progressbar=False)
    curve = np.array(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), device="cpu",
                            softmax=True))[:, 2::3]            # 12 steps of 4 channel values: 4 whole pixels each
    ours = perturbed_outputs(model, x, a, [0.25, 0.5, 0.75, 1.0], fill=x.amin((1, 2, 3), keepdim=True))
    np.testing.assert_allclose(ours[torch.arange(2), :, y].numpy(), curve, rtol=1e-5, atol=1e-6)
