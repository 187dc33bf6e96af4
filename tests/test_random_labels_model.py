"""shapes_cnn_random_labels, the model of lab 16's data-randomisation test (Adebayo et al., 2018): it must
have memorised its permuted training labels (else the test compares with an untrained model) and know
nothing about shapes (test accuracy at chance)."""
from __future__ import annotations

import torch

from xai_course import models
from xai_course.data import shapes
from xai_course.models import zoo
from xai_course.models.train import RANDOM_LABELS_SEED, TEST_SEED, TRAIN_SEED, evaluate, train_set

NAME = "shapes_cnn_random_labels"


def test_the_labels_are_a_permutation_of_the_true_labels():
    images, labels = train_set(NAME)
    true = shapes(models.spec(NAME).train_size, seed=TRAIN_SEED)
    assert torch.equal(images, true.images)
    assert torch.equal(labels.bincount(minlength=5), true.labels.bincount(minlength=5))  # same classes, permuted
    agree = (labels == true.labels).float().mean().item()
    assert agree < 0.3, f"{agree:.2f} of the permuted labels are the true ones: not random (seed {RANDOM_LABELS_SEED})"


def test_it_memorised_its_training_set():
    accuracy = evaluate(models.load(NAME), *train_set(NAME))
    assert accuracy >= 0.95, f"training accuracy {accuracy:.3f}: the random labels were not memorised"


def test_it_is_at_chance_on_unseen_images():
    data = shapes(1000, seed=TEST_SEED)
    accuracy = evaluate(models.load(NAME), data.images, data.labels)
    assert 0.12 <= accuracy <= 0.28, f"test accuracy {accuracy:.3f}, chance is 0.2"


def test_the_card_reports_both_accuracies():
    card = (zoo.WEIGHTS_DIR / f"{NAME}.md").read_text()
    assert "Training accuracy" in card and "Test accuracy" in card and "permuted" in card
    assert models.spec(NAME).build().__class__ is models.load("shapes_cnn").__class__  # same architecture


def test_the_recipe_trains_on_until_the_target_or_the_cap(monkeypatch):
    """The recipe, not the shipped weights: a random-label model trains past its one-cycle epochs, at a
    constant lr, until it memorised its training set or reached ``max_epochs`` (tiny sizes: seconds)."""
    import dataclasses

    from xai_course.models import train

    tiny = dataclasses.replace(models.spec(NAME), name="tiny_random_labels", train_size=24, epochs=1,
                               max_epochs=3, train_accuracy_target=1.01)   # unreachable: runs to the cap
    monkeypatch.setitem(zoo.MODELS, tiny.name, tiny)
    monkeypatch.setattr(train, "TEST_SIZE", 20)
    deterministic = torch.are_deterministic_algorithms_enabled()
    model, report = train.train_model(tiny.name, verbose=False)
    assert report["epochs"] == 3 and 0.0 <= report["train_accuracy"] <= 1.0
    assert torch.are_deterministic_algorithms_enabled() == deterministic      # restored
    reached = dataclasses.replace(tiny, train_accuracy_target=0.0)              # met at once: no extra epoch
    monkeypatch.setitem(zoo.MODELS, tiny.name, reached)
    assert train.train_model(tiny.name, verbose=False)[1]["epochs"] == 1
    card = train._card(tiny, report, 1)
    assert "until the accuracy on the training set reaches" in card and "at most 3 epochs" in card
