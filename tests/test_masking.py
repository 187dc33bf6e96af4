"""The masked-evaluation engine: masked_outputs / evaluate, segments, fills, painting, superpixels.

Known answers by hand (a model that reads its input back), the batching bound (no batch above
batch_size, same outputs for every batch_size), the three outputs, hygiene and bad input.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import make
from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from xai_course.attribution import count_passes
from xai_course.attribution.masking import (check_segments, make_fill, masked_outputs, paint, segment_means,
                                            superpixels)


class Flatten(nn.Module):
    """Returns its input flattened as the 'logits': the perturbed input itself comes back."""

    def forward(self, x):
        return x.flatten(1)


def test_masked_outputs_known_answer_on_flat_inputs():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    segments = torch.tensor([0, 0, 1, 2])
    masks = torch.tensor([[False, False, False], [True, False, False], [True, False, True], [True] * 3])
    got = masked_outputs(Flatten().eval(), x, None, masks, segments, baseline=-1.0, output="logits")
    expected = torch.tensor([[-1, -1, -1, -1], [1, 2, -1, -1], [1, 2, -1, 4], [1, 2, 3, 4.0]])
    torch.testing.assert_close(got[0], expected)
    target = masked_outputs(Flatten().eval(), x, 3, masks, segments, baseline=-1.0)
    torch.testing.assert_close(target, expected[None, :, 3])


def test_masked_outputs_on_images_keeps_all_channels_of_a_segment():
    x = torch.arange(2 * 2 * 2 * 2, dtype=torch.float32).view(2, 2, 2, 2)
    segments = torch.tensor([[0, 1], [1, 1]])
    masks = torch.tensor([[[True, False]], [[False, True]]])  # example 0 keeps segment 0, example 1 segment 1
    got = masked_outputs(Flatten().eval(), x, None, masks, segments, baseline=0.0, output="logits")
    z0 = torch.tensor([[1, 0], [0, 0.0]])
    torch.testing.assert_close(got[0, 0], (x[0] * z0).flatten())
    torch.testing.assert_close(got[1, 0], (x[1] * (1 - z0)).flatten())


@pytest.mark.parametrize("kind", ["number", "colour", "image"])
def test_every_kind_of_fill_gives_the_copies_built_by_hand(kind):
    """The engine keeps a one-number fill as a scalar and a per-image, per-channel colour as (N, C, 1, 1):
    the copies are the same as where(keep, x, fill) at full size."""
    from xai_course.attribution.masking import evaluate

    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 2, 4, 5, generator=g)
    fill = {"number": torch.full_like(x, 0.25),
            "colour": torch.rand(3, 2, 1, 1, generator=g).expand_as(x),
            "image": torch.rand(3, 2, 4, 5, generator=g)}[kind]
    masks = torch.rand(3, 6, 1, 4, 5, generator=g) > 0.5            # (N, rows, 1, H, W)

    def keep(example, row):
        return masks[example, row]

    got = evaluate(Flatten().eval(), x, None, fill, keep, 6, batch_size=4, output="logits")
    expected = torch.where(masks, x[:, None], fill[:, None]).flatten(2)
    assert torch.equal(got, expected)


def test_parallel_map_keeps_order_raises_and_runs_nested_calls_in_place():
    from xai_course.attribution.masking import parallel_map

    threads = torch.get_num_threads()
    assert parallel_map(lambda k: k * k, list(range(5))) == [0, 1, 4, 9, 16]
    assert parallel_map(lambda k: parallel_map(lambda j: j + k, [1, 2]), [10, 20]) == [[11, 12], [21, 22]]
    with pytest.raises(ZeroDivisionError):
        parallel_map(lambda k: 1 / k, [1, 0])
    assert torch.get_num_threads() == threads, "the intra-op thread count was not restored"


def test_probabilities_are_the_softmax_of_the_logits():
    model, x, target = make("course_cnn")
    masks = torch.rand(5, 16, generator=torch.Generator().manual_seed(0)) > 0.5
    seg = superpixels(x, "grid")
    logits = masked_outputs(model, x, None, masks, seg, output="logits")
    torch.testing.assert_close(masked_outputs(model, x, None, masks, seg, output="probabilities"),
                               logits.softmax(-1))
    torch.testing.assert_close(masked_outputs(model, x, target, masks, seg),
                               logits.gather(2, target.view(-1, 1, 1).expand(-1, 5, 1))[..., 0])
    full = masked_outputs(model, x, target, torch.ones(1, 16, dtype=torch.bool), seg)
    with torch.no_grad():
        torch.testing.assert_close(full[:, 0], model(x).gather(1, target[:, None])[:, 0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_batches_never_exceed_batch_size_and_do_not_change_outputs(batch_size):
    model, x, target = make("resnet_style", n=3)
    masks = torch.rand(3, 10, 16, generator=torch.Generator().manual_seed(1)) > 0.3
    seg = superpixels(x, "grid")
    expected = masked_outputs(model, x, target, masks, seg, batch_size=1000)
    with count_passes(model) as counter:
        got = masked_outputs(model, x, target, masks, seg, batch_size=batch_size)
    assert max(counter) <= batch_size and sum(counter) == 30
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_fills():
    x = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]], [[0.0, 2.0], [4.0, 10.0]]]])  # (1, 2, 2, 2)
    segments = torch.tensor([[[0, 0], [1, 1]]])
    means = make_fill(x, "mean", segments)
    torch.testing.assert_close(means, torch.tensor([[[[2.0, 2.0], [6.0, 6.0]], [[1.0, 1.0], [7.0, 7.0]]]]))
    torch.testing.assert_close(make_fill(x, 0.5), torch.full_like(x, 0.5))
    torch.testing.assert_close(make_fill(x, "black"), torch.zeros_like(x))
    ref = torch.rand(2, 2, 2)
    torch.testing.assert_close(make_fill(x, ref), ref[None])
    flat = torch.tensor([[1.0, 3.0, 10.0]])
    torch.testing.assert_close(segment_means(flat, torch.tensor([[0, 0, 1]])), torch.tensor([[2.0, 2.0, 10.0]]))


def test_paint_and_check_segments():
    x = torch.zeros(2, 3, 2, 2)
    seg, counts = check_segments(torch.tensor([[0, 1], [2, 1]]), x)
    assert seg.shape == (2, 2, 2) and counts.tolist() == [3, 3]
    painted = paint(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), seg, x)
    assert painted.shape == x.shape
    torch.testing.assert_close(painted[1, 2], torch.tensor([[4.0, 5.0], [6.0, 5.0]]))
    seg, counts = check_segments(None, torch.zeros(3, 5))
    assert seg.tolist() == [list(range(5))] * 3 and counts.tolist() == [5] * 3
    seg, counts = check_segments(torch.tensor([[0, 0, 3], [1, 0, 0]]), torch.zeros(2, 3))
    assert counts.tolist() == [4, 2]


@pytest.mark.parametrize("method", ["quickshift", "slic", "felzenszwalb", "grid"])
def test_superpixels_labels_are_consecutive(method):
    _, x, _ = make("course_cnn", n=2)
    seg = superpixels(x, method)
    assert seg.dtype == torch.long and seg.shape == (2, 64, 64)
    for s in seg:
        assert torch.equal(s.unique(), torch.arange(int(s.max()) + 1))
        assert 2 <= int(s.max()) + 1 <= 64
    assert torch.equal(superpixels(x, method), seg)  # deterministic
    assert superpixels(x[:, :1], method).shape == (2, 64, 64)  # one channel
    assert superpixels(x * 255, method).shape == (2, 64, 64)  # rescaled


def test_grid_cells():
    seg = superpixels(torch.rand(1, 3, 6, 4), "grid", cells=(3, 2))
    assert seg[0].tolist() == [[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2 + [[4, 4, 5, 5]] * 2


@pytest.mark.parametrize("arch", ["mlp", "course_resnet", "functional_cnn"])
def test_hygiene(arch):
    model, x, target = make(arch)
    seg = None if x.ndim == 2 else superpixels(x, "grid", cells=2)
    m = 10 if x.ndim == 2 else 4
    model.train()
    before, x_before = snapshot(model), inputs_snapshot(x)
    with pytest.warns(UserWarning, match="train mode"), torch.no_grad():
        out = masked_outputs(model, x, target, torch.ones(3, m, dtype=torch.bool), seg, baseline="mean",
                             batch_size=2)
    assert_unchanged(before, snapshot(model))
    assert_inputs_unchanged(x_before, x)
    assert not out.requires_grad


class Summed(nn.Module):
    def forward(self, x):
        return x.sum(1)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(model=Summed().eval()), ValueError, "logits"),
    (dict(masks=torch.ones(3, 10)), TypeError, "masks"),
    (dict(masks=torch.ones(3, 9, dtype=torch.bool)), ValueError, "masks"),
    (dict(masks=torch.ones(2, 3, 10, dtype=torch.bool)), ValueError, "masks"),
    (dict(segments=torch.zeros(11, dtype=torch.long)), ValueError, "segments"),
    (dict(segments=torch.zeros(10)), TypeError, "segments"),
    (dict(segments=-torch.ones(10, dtype=torch.long)), ValueError, "segments"),
    (dict(segments=[0] * 10), TypeError, "segments"),
    (dict(baseline=None), TypeError, "baseline"),
    (dict(baseline="gray"), ValueError, "baseline"),
    (dict(baseline=torch.zeros(3)), ValueError, "baseline"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(output="softmax"), ValueError, "output"),
    (dict(target=7), ValueError, "target"),
    (dict(target=None), TypeError, "target"),
])
def test_masked_outputs_bad_input(kwargs, error, words):
    model, x, _ = make("mlp", n=5)
    args = dict(model=model, inputs=x, target=0, masks=torch.ones(3, 10, dtype=torch.bool)) | kwargs
    with pytest.raises(error, match=words):
        masked_outputs(args.pop("model"), args.pop("inputs"), args.pop("target"), args.pop("masks"), **args)


@pytest.mark.parametrize("images, kwargs, error, words", [
    (torch.rand(3, 8, 8), {}, ValueError, "images"),
    (torch.rand(1, 2, 8, 8), {}, ValueError, "channels"),
    (torch.rand(1, 3, 8, 8), dict(method="watershed"), ValueError, "method"),
    (torch.rand(1, 3, 8, 8), dict(method="grid", cells=0), ValueError, "cells"),
    (torch.rand(1, 3, 8, 8), dict(method="grid", cells=9), ValueError, "cells"),
    ("image", {}, TypeError, "images"),
])
def test_superpixels_bad_input(images, kwargs, error, words):
    with pytest.raises(error, match=words):
        superpixels(images, **kwargs)
