"""An instructor's hidden test for chapter 99 (used with --hidden): it shares exercise 99.2's point."""
import pytest
import torch

from xai_course.grading.checks import assert_close, call, fresh_seed, random_cnn, reference_gradient


@pytest.mark.exercise("99.2", points=1, functions=["times_input"])
def test_times_input_on_a_random_cnn(submission):
    fresh_seed()
    model, x = random_cnn(3, 4), torch.rand(2, 3, 8, 8)
    target = torch.randint(0, 4, (2,))
    expected = x * reference_gradient(model, x, target)
    assert_close(call(submission.times_input, model, x, target), expected, "times_input on a CNN")
