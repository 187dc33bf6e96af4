"""Grading tests of lab 17 (notebooks/17_bias_detection.ipynb): fresh random inputs and models each run."""
import pytest
import torch
from torch import nn

from xai_course.grading.checks import assert_close, call, check_tensor, fresh_seed, random_cnn


# --- Exercise 17.1: group_accuracies(predictions, labels, cue, cue_class=0) -> (2, 2) ----------------------
def _reference_groups(predictions, labels, cue, cue_class):
    out = torch.full((2, 2), float("nan"))
    for row, in_row in enumerate((labels == cue_class, labels != cue_class)):
        for col, in_col in enumerate((~cue, cue)):
            group = in_row & in_col
            if group.any():
                out[row, col] = (predictions[group] == labels[group]).float().mean()
    return out


def _check_groups(submission, predictions, labels, cue, cue_class, what):
    got = call(submission.group_accuracies, predictions, labels, cue, cue_class)
    assert isinstance(got, torch.Tensor) and got.is_floating_point() and tuple(got.shape) == (2, 2), (
        f"{what}: return a float tensor of shape (2, 2), got {getattr(got, 'shape', type(got).__name__)}")
    expected = _reference_groups(predictions, labels, cue, cue_class)
    assert torch.equal(torch.isnan(got), torch.isnan(expected)), (
        f"{what}: nan exactly for the empty groups; expected {expected.tolist()}, got {got.tolist()}")
    assert_close(torch.nan_to_num(got.float()), torch.nan_to_num(expected), what)


@pytest.mark.exercise("17.1", points=2, functions=["group_accuracies"])
def test_group_accuracies_of_random_predictions(submission):
    fresh_seed()
    n, classes = int(torch.randint(20, 60, ())), int(torch.randint(2, 6, ()))
    labels = torch.randint(0, classes, (n,))
    predictions = torch.where(torch.rand(n) < 0.6, labels, torch.randint(0, classes, (n,)))
    cue = torch.rand(n) < 0.4
    cue_class = int(torch.randint(0, classes, ()))
    _check_groups(submission, predictions, labels, cue, cue_class, f"random case, cue_class={cue_class}")


@pytest.mark.exercise("17.1", points=2, functions=["group_accuracies"])
def test_group_accuracies_with_empty_groups(submission):
    fresh_seed()
    labels = torch.randint(1, 4, (12,))
    labels[:3] = 0
    cue = labels == 0                                 # every circle marked, no other image marked
    predictions = torch.randint(0, 4, (12,))
    _check_groups(submission, predictions, labels, cue, 0, "every image of cue_class marked, no other")
    _check_groups(submission, labels.clone(), labels, cue, 0, "all predictions right")


# --- Exercise 17.2: mark_effect(model, images, target, cue_masks, value=1.0) -> (N,) ----------------------
def _reference_effect(model, images, target, cue_masks, value):
    painted = torch.where(cue_masks, torch.full_like(images, value), images)
    with torch.no_grad():
        return model(painted).softmax(1)[:, target] - model(images).softmax(1)[:, target]


def _corner_masks(n, size, side):
    masks = torch.zeros(n, 1, size, size, dtype=torch.bool)
    masks[..., 1:1 + side, 1:1 + side] = True
    return masks


@pytest.mark.exercise("17.2", points=2, functions=["mark_effect"])
def test_mark_effect_on_a_random_cnn(submission):
    fresh_seed()
    model, n = random_cnn(3, 4), int(torch.randint(2, 6, ()))
    images = torch.rand(n, 3, 12, 12)
    masks = _corner_masks(n, 12, int(torch.randint(2, 5, ())))
    masks[0] = False                                  # one image left as it is: effect 0
    target, value = int(torch.randint(0, 4, ())), float(torch.rand(()) * 2)
    got = check_tensor(call(submission.mark_effect, model, images, target, masks, value), (n,), "mark_effect(...)")
    assert_close(got, _reference_effect(model, images, target, masks, value), f"target {target}, value {value:.2f}",
                 atol=1e-5)


@pytest.mark.exercise("17.2", points=2, functions=["mark_effect"])
def test_mark_effect_default_value_and_a_linear_reader(submission):
    fresh_seed()
    reader = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)).eval()
    with torch.no_grad():
        reader[1].weight.zero_()
        reader[1].bias.zero_()
        reader[1].weight[0, :8] = 1.0                 # logit 0: the first row of channel 0
    images = torch.rand(3, 3, 8, 8) * 0.5
    masks = torch.zeros(3, 1, 8, 8, dtype=torch.bool)
    masks[:, :, 0, :4] = True
    got = check_tensor(call(submission.mark_effect, reader, images, 0, masks), (3,), "mark_effect(..., value=1.0)")
    before = images[:, 0, 0].sum(1)
    after = before - images[:, 0, 0, :4].sum(1) + 4.0
    assert_close(got, torch.sigmoid(after) - torch.sigmoid(before), "a linear reader of the first row, value 1.0")


# --- Exercise 17.3: decorrelated_subset(labels, cue, seed=0) -> LongTensor of indices (properties) -------
def _check_subset(submission, labels, cue, what):
    subset = call(submission.decorrelated_subset, labels, cue, 0)
    assert isinstance(subset, torch.Tensor) and subset.ndim == 1, f"{what}: return a 1-D tensor of indices"
    assert not subset.is_floating_point() and subset.dtype != torch.bool, f"{what}: indices must be integers"
    subset = subset.long()
    assert len(set(subset.tolist())) == len(subset), f"{what}: the indices must be distinct"
    assert len(subset) == 0 or (subset.min() >= 0 and subset.max() < len(labels)), f"{what}: index out of range"
    classes = labels.unique()
    half = min(min(int((cue & (labels == c)).sum()), int((~cue & (labels == c)).sum())) for c in classes)
    assert len(subset) == 2 * half * len(classes), (
        f"{what}: the largest such subset has {2 * half * len(classes)} images, got {len(subset)}")
    for c in classes.tolist():
        members = subset[labels[subset] == c]
        assert len(members) == 2 * half, f"{what}: class {c} should have {2 * half} images, got {len(members)}"
        assert int(cue[members].sum()) == half, f"{what}: class {c}: exactly half of its images marked"


@pytest.mark.exercise("17.3", points=3, functions=["decorrelated_subset"])
def test_decorrelated_subset_of_spurious_training_data(submission):
    fresh_seed()
    n, classes = int(torch.randint(200, 400, ())), int(torch.randint(2, 6, ()))
    labels = torch.randint(0, classes, (n,))
    p = float(0.7 + 0.25 * torch.rand(()))
    cue = torch.rand(n) < torch.where(labels == 0, p, 1 - p)
    _check_subset(submission, labels, cue, f"{classes} classes, p = {p:.2f}")


@pytest.mark.exercise("17.3", points=3, functions=["decorrelated_subset"])
def test_decorrelated_subset_edge_cases(submission):
    fresh_seed()
    labels = torch.arange(30) % 3
    _check_subset(submission, labels, torch.rand(30) < 0.5, "balanced random marks")
    _check_subset(submission, labels, labels == 1, "class 1 always marked, the others never: nothing to keep")
    perm = torch.randperm(30)
    _check_subset(submission, labels[perm], (torch.arange(30) < 15)[perm], "shuffled order")
