"""A made-up chapter 98 next to chapter 99: an assignment for chapter 99 must never grade it."""
import pytest
import torch

from xai_course.grading.checks import assert_close, call, fresh_seed


@pytest.mark.exercise("98.1", points=1, functions=["double"])
def test_double(submission):
    fresh_seed()
    x = torch.randn(5)
    assert_close(call(submission.double, x), 2 * x, "double(x)")
