"""Lab 17 (bias detection): test sets, accuracies and the fairness gap, mark scores by hand, the shipped
models' gap, the results file, bad input."""
import json
import math

import pytest
import torch
from torch import nn

from xai_course import models
from xai_course.evaluation import bias_lab
from xai_course.grading.checks import random_cnn


class MarkReader(nn.Module):
    """Says class 0 exactly when the top-left mark is there (the brightest 4x4 corner), class 1 otherwise:
    a model that learned nothing but the shortcut."""

    def forward(self, x):
        corner = x[:, :, 2:6, 2:6].mean((1, 2, 3))
        marked = (corner > 0.999).float()
        return torch.stack([marked, 1 - marked, 0 * marked, 0 * marked, 0 * marked], 1)


class LabelOracle(nn.Module):
    """Returns one-hot logits of fixed labels, whatever the image: a model that ignores the mark."""

    def __init__(self, labels):
        super().__init__()
        self.labels = labels

    def forward(self, x):
        return nn.functional.one_hot(self.labels[:len(x)], 5).float()


def test_test_sets_are_the_same_images_with_the_mark_aligned_flipped_or_absent():
    sets = bias_lab.test_sets(40, seed=3)
    assert set(sets) == {"aligned", "flipped", "absent"}
    a, f, n = sets["aligned"], sets["flipped"], sets["absent"]
    circle = a.labels == 0
    assert a.cue.tolist() == circle.tolist() and f.cue.tolist() == (~circle).tolist() and n.cue.sum() == 0
    for d in (f, n):
        assert torch.equal(d.labels, a.labels)
    outside = ~(a.cue_masks | f.cue_masks)                       # everywhere but the mark: the same pixels
    assert torch.equal(a.images * outside, n.images * outside) and torch.equal(f.images * outside, n.images * outside)
    assert (a.images[a.cue_masks.expand_as(a.images)] == 1).all()   # the mark is white
    assert a.cue_masks[circle].flatten(1).sum(1).eq(16).all()       # 4x4 pixels on a 64x64 image
    again = bias_lab.test_sets(40, seed=3)                          # deterministic
    assert all(torch.equal(again[k].images, sets[k].images) for k in sets)


def test_accuracies_and_gap_of_a_shortcut_model_by_hand():
    sets = bias_lab.test_sets(50, seed=4)
    acc = bias_lab.accuracies(MarkReader(), sets)
    labels = sets["aligned"].labels
    share_0, share_1 = (labels == 0).float().mean().item(), (labels == 1).float().mean().item()
    # aligned: right on every circle (marked) and on every square (unmarked, says 1)
    assert acc["aligned"]["all"] == pytest.approx(share_0 + share_1)
    assert acc["aligned"]["cue class"] == 1.0
    # flipped: every circle unmarked (says 1: wrong), every other marked (says 0: wrong)
    assert acc["flipped"]["all"] == 0.0
    assert acc["absent"]["all"] == pytest.approx(share_1) and acc["absent"]["cue class"] == 0.0
    assert bias_lab.fairness_gap(MarkReader(), sets) == pytest.approx(share_0 + share_1)


def test_a_model_that_ignores_the_mark_has_no_gap():
    sets = bias_lab.test_sets(30, seed=5)
    oracle = LabelOracle(sets["aligned"].labels)
    assert bias_lab.fairness_gap(oracle, sets) == 0.0
    assert all(v == 1.0 for cond in bias_lab.accuracies(oracle, sets).values() for v in cond.values())


def test_predictions_restore_the_model_mode():
    model = random_cnn(3, 5).train()
    bias_lab.predictions(model, torch.rand(3, 3, 8, 8))
    assert model.training


def test_mark_scores_by_hand():
    cue = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    cue[:, :, :2, :2] = True
    obj = torch.zeros_like(cue)
    obj[:, :, 4:, 4:] = True
    maps = torch.zeros(2, 1, 8, 8)
    maps[0][cue[0]] = 1.0                        # image 0: 1 on the mark, 0 elsewhere
    maps[1][cue[1]] = 1.0                        # image 1: 1 on the mark, 3 on each object pixel
    maps[1][obj[1]] = 3.0
    s = bias_lab.mark_scores(maps, cue, obj)
    torch.testing.assert_close(s["mark"], torch.tensor([1.0, 4 / (4 + 48)]))
    torch.testing.assert_close(s["object"], torch.tensor([0.0, 48 / 52]))
    torch.testing.assert_close(s["top-k IoU"], torch.tensor([1.0, 0.0]))   # top 4 pixels: the mark / object
    torch.testing.assert_close(s["top-k share"], torch.tensor([1.0, 0.0]))
    half = torch.zeros(1, 1, 8, 8)                                         # 2 of its top 4 on the mark
    half[0, 0, 0, :2] = 2.0
    half[0, 0, 7, :2] = 1.0
    one = bias_lab.mark_scores(half, cue[:1], obj[:1])
    torch.testing.assert_close(one["top-k share"], torch.tensor([0.5]))
    torch.testing.assert_close(one["top-k IoU"], torch.tensor([2 / 6]))
    assert s["pointing"].tolist() == [1.0, 0.0]
    # half the mass: 2 of the 4 mark pixels (2/64); image 1: 9 object pixels hold 27 >= 26 of 52
    torch.testing.assert_close(s["half area"], torch.tensor([2 / 64, 9 / 64]))


def test_half_mass_area_of_even_and_empty_maps():
    maps = torch.zeros(3, 1, 10, 10)
    maps[0, 0, :5] = 2.0                         # 50 of 100 pixels, evenly
    maps[1] = 1.0                                # everything, evenly
    maps[2] = -1.0                               # no positive mass at all
    torch.testing.assert_close(bias_lab.half_mass_area(maps), torch.tensor([0.25, 0.5, 1.0]))
    torch.testing.assert_close(bias_lab.half_mass_area(maps[:2], share=1.0), torch.tensor([0.5, 1.0]))
    for k in (1, 3, 7):                          # ceil(share * k) / P
        m = torch.zeros(1, 1, 4, 4)
        m.view(-1)[:k] = 1.0
        assert bias_lab.half_mass_area(m, 0.5).item() == pytest.approx(math.ceil(k / 2) / 16)


def test_magnitude_and_maps_of_every_method_shape():
    model = models.VGGNet(num_classes=5).eval()
    x = bias_lab.test_sets(5, seed=6)["aligned"].images[:2]
    maps = bias_lab.attribution_maps(model, x, 0, ["saliency", "grad_cam", "fullgrad", "random_attribution"])
    for name, m in maps.items():
        assert m.shape == (2, 1, 64, 64) and (m >= 0).all(), name
    torch.testing.assert_close(bias_lab.magnitude(torch.tensor([[[[1.0]], [[-2.0]]]])), torch.tensor([[[[3.0]]]]))


def test_bad_input():
    with pytest.raises(ValueError, match="share"):
        bias_lab.half_mass_area(torch.rand(1, 1, 4, 4), share=0.0)
    with pytest.raises(ValueError, match="method"):
        bias_lab.method_options("no_such_method")
    with pytest.raises(ValueError, match="scale"):
        bias_lab.study("huge")
    with pytest.raises(ValueError, match="lens"):
        bias_lab.lens_images(bias_lab.test_sets(5), "no lens", 2)
    with pytest.raises(ValueError, match="flipped"):
        bias_lab.fairness_gap(MarkReader(), {"aligned": bias_lab.test_sets(5)["aligned"]})
    with pytest.raises(ValueError, match="sets"):
        bias_lab.accuracies(MarkReader(), {})
    with pytest.raises(ValueError, match="images"):
        bias_lab.predictions(MarkReader(), torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match="masks"):
        bias_lab.mark_scores(torch.rand(2, 1, 8, 8), torch.ones(2, 1, 4, 4, dtype=torch.bool),
                             torch.ones(2, 1, 8, 8, dtype=torch.bool))


def test_the_spurious_model_uses_the_mark_and_the_remedy_does_not():
    sets = bias_lab.test_sets(250)                                   # paired images: little noise in the gap
    gaps = {name: bias_lab.fairness_gap(models.load(name), sets) for name in bias_lab.MODELS}
    assert gaps["shapes_cnn_spurious"] > 0.15, gaps                  # the shortcut costs 15+ points
    assert abs(gaps["shapes_cnn_decorrelated"]) < 0.03, gaps          # the remedy: within noise of 0
    acc = bias_lab.accuracies(models.load("shapes_cnn_spurious"), sets)
    assert acc["absent"]["cue class"] < acc["aligned"]["cue class"] - 0.3, acc   # unmarked circles missed


def test_the_shipped_full_results():
    results = bias_lab.load_results()
    assert results["command"] == "python -m xai_course.evaluation.bias_lab --full" and results["scale"] == "full"
    assert set(results["scores"]["shapes_cnn_spurious"]["marked circles"]) == set(bias_lab.METHODS)
    for key in ("seconds", "versions", "machine", "settings", "accuracy", "fairness_gap", "verdicts"):
        assert key in results, key
    json.dumps(results)
    with pytest.raises(FileNotFoundError, match="--full"):
        bias_lab.load_results("/nonexistent/bias_lab.json")


def test_the_spurious_models_card_states_its_accuracy_with_the_mark_moved():
    acc = bias_lab.load_results()["accuracy"]["shapes_cnn_spurious"]
    card = (models.zoo.WEIGHTS_DIR / "shapes_cnn_spurious.md").read_text()
    stated = " / ".join(f"{100 * acc[c]['all']:.2f}%" for c in ("aligned", "flipped", "absent"))
    assert stated in card and "Deliberately biased" in card, stated


def test_verdicts_rank_by_the_ratio_to_the_remedy_and_ask_a_minimum_ratio():
    def row(mark, se, area=0.1):
        return {"mark": mark, "mark se": se, "half area": area}

    spurious = {"fullgrad": row(0.06, 0.001, 0.2), "big": row(0.08, 0.001), "small": row(0.002, 1e-5),
                "blind": row(0.015, 0.0001), "random_attribution": row(0.004, 0.0)}
    remedy = {"fullgrad": row(0.02, 0.001), "big": row(0.04, 0.001), "small": row(0.0001, 1e-5),
              "blind": row(0.01, 0.0001), "random_attribution": row(0.004, 0.0)}
    results = {"fairness_gap": {bias_lab.MODELS[0]: 0.3, bias_lab.MODELS[1]: 0.0},
               "scores": {bias_lab.MODELS[0]: {"marked others": spurious},
                          bias_lab.MODELS[1]: {"marked others": remedy}}}
    v = bias_lab.verdicts(results)["marked others"]
    assert v["most mass on the mark"] == "big"                                   # raw mass
    assert v["by ratio to the remedy"] == ["small", "fullgrad", "big", "blind"]  # 20, 3, 2, 1.5
    assert v["separate the models"] == ["fullgrad", "big", "small"]   # blind: 1.5 < MIN_RATIO, however many s.e.
    assert bias_lab.MIN_RATIO == v["min ratio"] == 2.0


def test_results_keep_significant_figures_not_decimal_places():
    assert bias_lab._rounded({"a": [0.000123456789, 12.3456789]}) == {"a": [0.000123457, 12.3457]}
    assert bias_lab._rounded(0.0) == 0.0 and bias_lab._rounded("x") == "x"
