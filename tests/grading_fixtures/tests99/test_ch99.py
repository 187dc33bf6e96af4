"""Grading tests of a made-up chapter 99, used by tests/test_grading.py to grade crafted submissions.

99.1 (2 points, one test): ``gradient(model, inputs, target)``, the signed gradient of logit[target];
                            it forbids the standard library's ``colorsys`` (standing in for a library
                            that has the answer in one call, as scipy has lab 16's).
99.2 (1 point, one test):   ``times_input(model, inputs, target)``, input x gradient.
"""
import pytest
import torch

from xai_course.grading.checks import assert_close, call, fresh_seed, random_mlp


def reference_gradient(model, x, target):
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
    return g


@pytest.mark.exercise("99.1", points=2, functions=["gradient"], forbid=("colorsys",))
def test_gradient_on_random_mlp(submission):
    fresh_seed()
    model, x = random_mlp(5, 8, 3), torch.randn(4, 5)  # one test keeps the repository's test suite fast
    target = torch.randint(0, 3, (4,))
    expected = reference_gradient(model, x, target)
    assert_close(call(submission.gradient, model, x, target), expected, "gradient(model, x, target)")


@pytest.mark.exercise("99.2", points=1, functions=["times_input"])
def test_times_input_on_random_mlp(submission):
    fresh_seed()
    model, x = random_mlp(6, 8, 4), torch.randn(3, 6)
    target = torch.randint(0, 4, (3,))
    expected = x * reference_gradient(model, x, target)
    assert_close(call(submission.times_input, model, x, target), expected, "times_input(model, x, target)")
