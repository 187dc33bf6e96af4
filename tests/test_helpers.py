"""The shared helpers: option checks and batching of ``attribution._core``, ``notebook.table`` and ``glue``,
the figure size rule of ``plotting.subplots``, and the book's Sphinx fixes."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from xai_course import plotting
from xai_course.attribution._core import (batches, check_batch_size, check_int, check_number,
                                          make_generator)
from xai_course.notebook import glue, table

matplotlib.use("Agg")


# ---------------------------------------------------------------- option checks
def test_check_int_accepts_ints_and_refuses_the_rest_naming_the_parameter():
    assert check_int(3, "samples") == 3 and check_int(np.int64(4), "samples") == 4
    assert check_int(None, "batch_size", allow_none=True) is None
    for bad in (0, -1, 2.0, True, "3", None):
        with pytest.raises(ValueError, match="samples must be a positive int, got"):
            check_int(bad, "samples")
    with pytest.raises(ValueError, match=r"steps must be an int >= 2, got 1"):
        check_int(1, "steps", minimum=2)
    with pytest.raises(ValueError, match="batch_size must be a positive int or None"):
        check_batch_size(0)


def test_check_number():
    assert check_number(0, "noise") == 0.0 and check_number(np.float32(0.5), "noise") == 0.5
    for bad in (-0.1, "0.1", True, float("nan"), float("inf"), None):
        with pytest.raises(ValueError, match=r"noise must be a number >= 0 \(a fraction\), got"):
            check_number(bad, "noise", meaning="a fraction")


def test_make_generator():
    assert make_generator(None, "cpu") is None
    a, b = make_generator(3, "cpu"), make_generator(np.int64(3), "cpu")
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    for bad in (1.0, "0", True):
        with pytest.raises(TypeError, match="seed must be an int or None"):
            make_generator(bad, "cpu")


@pytest.mark.parametrize("total, size", [(0, None), (1, None), (12, None), (12, 1), (12, 5), (12, 12), (12, 100)])
def test_batches_cover_everything_in_order_and_bound_each_batch(total, size):
    ranges = list(batches(total, size))
    covered = [i for a, b in ranges for i in range(a, b)]
    assert covered == list(range(total))
    assert all(b - a <= (size or total) for a, b in ranges)
    assert len(ranges) == (0 if total == 0 else -(-total // (size or total)))


# ---------------------------------------------------------------- notebook helpers
def test_table_is_markdown_with_one_line_per_row_and_numbers_formatted():
    text = table([["IG", 0.0012345, 12], ["SmoothGrad", 3.5e-9, 12345], ["x|y", torch.tensor(2.0), True]],
                 ["method", "max abs diff", "calls"], digits=3)
    lines = text.splitlines()
    assert lines[0] == "| method | max abs diff | calls |"
    assert lines[1] == "|:--|--:|:--|"  # numbers right, text (and mixed columns) left
    assert lines[2] == "| IG | 0.00123 | 12 |"  # 3 significant digits when small
    assert lines[3] == "| SmoothGrad | 3.5e-09 | 12,345 |"
    assert lines[4] == "| x\\|y | 2.000 | True |"  # a pipe in a cell is escaped
    with pytest.raises(ValueError, match="row 0 has 2 cells, expected 3"):
        table([[1, 2]], ["a", "b", "c"])


def test_glue_returns_the_value():
    assert glue("test-helpers-value", 1.5) == 1.5
    assert glue("test-helpers-tensor", torch.tensor(2.5)) == 2.5


# ---------------------------------------------------------------- the figure size rule
def test_subplots_keeps_figures_within_the_page():
    fig, axes = plotting.subplots(2, 6)
    width, height = fig.get_size_inches()
    assert width == pytest.approx(plotting.PAGE_WIDTH) and height <= 9.0
    assert fig.dpi == plotting.DPI
    fig, _ = plotting.subplots(1, 1, width=0.5)
    assert fig.get_size_inches()[0] == pytest.approx(plotting.PAGE_WIDTH / 2)
    with pytest.raises(ValueError, match="at most 6 panels"):
        plotting.subplots(1, plotting.MAX_COLUMNS + 1)
    with pytest.raises(ValueError, match="width"):
        plotting.subplots(1, 2, width=1.5)
    with pytest.raises(TypeError, match="size rule"):
        plotting.subplots(1, 2, figsize=(12, 3))
    matplotlib.pyplot.close("all")


def test_attribution_grid_uses_the_size_rule():
    images = torch.rand(2, 3, 8, 8)
    fig = plotting.attribution_grid(images, {"a": torch.randn(2, 3, 8, 8), "b": torch.rand(2, 3, 8, 8)})
    assert fig.get_size_inches()[0] <= plotting.PAGE_WIDTH + 1e-9
    with pytest.raises(ValueError, match="at most 6 panels"):
        plotting.attribution_grid(images, {str(k): torch.rand(2, 3, 8, 8) for k in range(6)})
    matplotlib.pyplot.close("all")


# ---------------------------------------------------------------- the book's Sphinx fixes
def test_book_fixes_keep_each_script_once_and_set_a_theme_mode():
    from types import SimpleNamespace

    from sphinx.builders.html._assets import _JavaScript

    from xai_course import book_fixes

    body = "const THEBE_JS_URL = 1"
    scripts = [_JavaScript(None, body=body), _JavaScript("a.js"), _JavaScript("", body=body), _JavaScript("a.js")]
    context = {"script_files": scripts}
    book_fixes._scripts_once(None, "page", "page.html", context, None)
    assert [(s.filename, s.attributes) for s in context["script_files"]] == [(None, {"body": body}), ("a.js", {})]
    config = SimpleNamespace(html_context={})
    book_fixes._default_mode(None, config)
    assert config.html_context == {"default_mode": "auto"}
