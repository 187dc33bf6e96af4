"""xai_course.data: shapes (with masks and the spurious cue), digits, photos."""
from __future__ import annotations

import pytest
import torch

from xai_course.data import SHAPE_CLASSES, digits, photo, shapes
from xai_course.data.real import PHOTOS


def test_shapes_contract():
    d = shapes(100, seed=3)
    assert d.images.shape == (100, 3, 64, 64) and d.images.dtype == torch.float32
    assert d.images.min() >= 0 and d.images.max() <= 1
    assert d.labels.shape == (100,) and d.labels.dtype == torch.int64
    assert d.masks.shape == (100, 1, 64, 64) and d.masks.dtype == torch.bool
    assert len(SHAPE_CLASSES) >= 5 and d.classes == SHAPE_CLASSES
    assert len(d) == 100
    assert torch.bincount(d.labels, minlength=5).tolist() == [20] * 5  # balanced


def test_every_image_has_an_object_of_plausible_size():
    d = shapes(500, seed=4)
    area = d.masks.float().mean((1, 2, 3))
    assert (area > 0.01).all() and (area < 0.35).all()


def test_object_pixels_take_the_object_colour():
    """The mask is exact: the object's pixels differ from the background around it."""
    d = shapes(200, seed=5)
    inside = (d.images * d.masks).sum((2, 3)) / d.masks.sum((2, 3))
    ring = torch.nn.functional.max_pool2d(d.masks.float(), 5, 1, 2).bool() & ~d.masks
    outside = (d.images * ring).sum((2, 3)) / ring.sum((2, 3))
    assert ((inside - outside).abs().sum(1) > 0.1).float().mean() > 0.9


def test_backgrounds_are_textured_and_cluttered():
    d = shapes(50, seed=6)
    background = d.images.masked_fill(d.masks, float("nan"))
    std = torch.stack([background[i][~torch.isnan(background[i])].std() for i in range(50)])
    assert (std > 0.03).all()
    plain = shapes(50, seed=6, clutter=0)
    assert not torch.equal(plain.images, d.images)


def test_shapes_are_deterministic_from_the_seed():
    a, b, c = shapes(64, seed=7), shapes(64, seed=7), shapes(64, seed=8)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, c.images)


def test_shapes_seed_is_independent_of_global_rng():
    torch.manual_seed(1)
    a = shapes(16, seed=9)
    torch.manual_seed(2)
    assert torch.equal(a.images, shapes(16, seed=9).images)



def test_class_subset():
    d = shapes(30, seed=0, classes=("circle", "star"))
    assert d.classes == ("circle", "star") and set(d.labels.tolist()) == {0, 1}


def test_spurious_cue_correlates_in_training_but_not_at_test():
    # 800 images (seeded, so the outcome is fixed): the rates' standard errors are about 0.02 and 0.04,
    # several times below the margins tested; 2000 images cost 2.5 times as much and test nothing more
    train = shapes(800, seed=12, spurious=0.95, cue_class=2)
    rate_in = train.cue[train.labels == 2].float().mean()
    rate_out = train.cue[train.labels != 2].float().mean()
    assert rate_in > 0.9 and rate_out < 0.1
    test = shapes(800, seed=13, spurious=0.5, cue_class=2)
    assert abs(test.cue[test.labels == 2].float().mean() - test.cue[test.labels != 2].float().mean()) < 0.1
    # the mark is drawn where cue_masks says, and only on images that carry it
    assert torch.equal(train.cue_masks.flatten(1).any(1), train.cue)
    assert (train.images[train.cue_masks.expand(-1, 3, -1, -1)] == 1).all()
    assert not (train.masks & train.cue_masks).any()


def test_plain_shapes_have_no_cue():
    d = shapes(10, seed=0)
    assert d.cue is None and d.cue_masks is None


@pytest.mark.parametrize("kwargs, words", [
    (dict(n=0), "n"), (dict(n=2.5), "n"), (dict(seed=-1), "seed"), (dict(seed="a"), "seed"),
    (dict(size=8), "size"), (dict(classes=("circle", "blob")), "classes"), (dict(classes=()), "classes"),
    (dict(clutter=-1), "clutter"), (dict(spurious=1.5), "spurious"), (dict(spurious=0.9, cue_class=7), "cue_class"),
])
def test_shapes_bad_arguments(kwargs, words):
    args = dict(n=4, seed=0) | kwargs
    with pytest.raises(ValueError, match=words):
        shapes(**args)


def test_digits_split_is_fixed_and_disjoint():
    train, test, every = digits("train"), digits("test"), digits("all")
    assert len(train) + len(test) == len(every) == 1797
    assert train.images.shape[1:] == (1, 16, 16) and digits("test", size=8).images.shape[1:] == (1, 8, 8)
    assert 0 <= float(train.images.min()) and float(train.images.max()) <= 1
    flat = lambda d: {tuple(v) for v in (d.images.flatten(1) * 1000).round().int().tolist()}
    assert len(flat(train) & flat(test)) <= 5  # the split is by image; sklearn has a few exact duplicates
    assert torch.equal(digits("test").images, test.images)
    assert set(test.labels.tolist()) == set(range(10))


@pytest.mark.parametrize("kwargs, words", [(dict(split="val"), "split"), (dict(size=4), "size")])
def test_digits_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        digits(**kwargs)


@pytest.mark.parametrize("name", PHOTOS)
def test_photos_ship_with_scikit_image(name):
    img = photo(name)
    assert img.shape == (3, 224, 224) and img.dtype == torch.float32
    assert 0 <= float(img.min()) and float(img.max()) <= 1 and float(img.std()) > 0.05


def test_photo_native_size_and_errors():
    assert photo("chelsea", size=None).shape == (3, 300, 451)
    assert photo("coffee", size=64).shape == (3, 64, 64)
    with pytest.raises(ValueError, match="name"):
        photo("dog")
    with pytest.raises(ValueError, match="size"):
        photo("chelsea", size=0)
