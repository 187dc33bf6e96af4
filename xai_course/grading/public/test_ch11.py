"""Grading tests of chapter 11 (notebooks/11_deconvnet.ipynb): fresh random models and inputs each run."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xai_course.grading.checks import assert_close, call, check_tensor, fresh_seed


def _reference_deconvnet_mlp(weights, target):
    signal = weights[-1][target]
    for W in reversed(weights[:-1]):
        signal = W.T @ signal.clamp(min=0)
    return signal


# --- Exercise 11.1: deconvnet_mlp(weights, target) -> (in,) -----------------------------------------
@pytest.mark.exercise("11.1", points=2, functions=["deconvnet_mlp"])
def test_deconvnet_mlp_on_random_weights(submission):
    fresh_seed()
    for depth in (1, 2, 4):
        sizes = [int(s) for s in torch.randint(2, 9, (depth + 1,))]
        weights = [torch.randn(sizes[i + 1], sizes[i]) for i in range(depth)]
        target = int(torch.randint(0, sizes[-1], ()))
        assert_close(call(submission.deconvnet_mlp, weights, target), _reference_deconvnet_mlp(weights, target),
                     f"deconvnet_mlp(weights of {depth} layers, target)")


@pytest.mark.exercise("11.1", points=2, functions=["deconvnet_mlp"])
def test_deconvnet_mlp_clamps_but_does_not_mask(submission):
    # W1 = I, W2 = [[1, -1]]: the signal (1, -1) is clamped to (1, 0) whatever the input would do
    weights = [torch.eye(2), torch.tensor([[1.0, -1.0]])]
    assert_close(call(submission.deconvnet_mlp, weights, 0), torch.tensor([1.0, 0.0]), "deconvnet_mlp(...)")


# --- Exercise 11.2: second_layer_projection(conv1, conv2, images, channel) -> (N, C, H, W) ---------
def _reference_second_layer_projection(conv1, conv2, images, channel):
    """conv1 -> ReLU -> MaxPool2d(2) -> conv2, channel `channel` of conv2's output sent back by DeConvNet:
    conv2's transposed filter, unpooling through the switches, max(0, .), conv1's transposed filters."""
    with torch.no_grad():
        a1 = F.conv2d(images, conv1.weight, conv1.bias, padding=conv1.padding)
        pooled, switches = F.max_pool2d(F.relu(a1), 2, return_indices=True)
        w2, b2 = conv2.weight[channel:channel + 1], conv2.bias[channel:channel + 1]
        signal = F.conv_transpose2d(F.conv2d(pooled, w2, b2, padding=conv2.padding), w2, padding=conv2.padding)
        signal = F.max_unpool2d(signal, switches, 2, output_size=a1.shape[2:])
        return F.conv_transpose2d(signal.clamp(min=0), conv1.weight, padding=conv1.padding)


@pytest.mark.exercise("11.2", points=3, functions=["second_layer_projection"])
@pytest.mark.parametrize("padding1, padding2", [(1, 1), (0, 2), (2, 0)])
def test_second_layer_projection_on_random_layers(submission, padding1, padding2):
    fresh_seed()
    c, k1, k2 = (int(torch.randint(1, 4, ())), int(torch.randint(2, 7, ())), int(torch.randint(2, 6, ())))
    size = int(torch.randint(8, 14, ()))                    # odd sizes too: the unpooling needs the size
    conv1, conv2 = nn.Conv2d(c, k1, 3, padding=padding1), nn.Conv2d(k1, k2, 3, padding=padding2)
    images = torch.randn(3, c, size, size)
    channel = int(torch.randint(0, k2, ()))
    got = call(submission.second_layer_projection, conv1, conv2, images, channel)
    check_tensor(got, images.shape, "second_layer_projection(...)")
    assert_close(got, _reference_second_layer_projection(conv1, conv2, images, channel),
                 f"second_layer_projection(conv1 (padding {padding1}), conv2 (padding {padding2}), "
                 f"{size}x{size} images, channel {channel})")


@pytest.mark.exercise("11.2", points=3, functions=["second_layer_projection"])
def test_second_layer_projection_on_the_digits_cnn(submission):
    from xai_course import data, models

    fresh_seed()
    features = models.load("digits_cnn").features            # conv, ReLU, MaxPool2d(2), conv, ...
    digits = data.digits("test").images
    images = digits[torch.randperm(len(digits))[:4]]
    channel = int(torch.randint(0, features[3].out_channels, ()))
    got = call(submission.second_layer_projection, features[0], features[3], images, channel)
    expected = _reference_second_layer_projection(features[0], features[3], images, channel)
    assert_close(got, expected, f"second_layer_projection(features[0], features[3], digits, channel {channel})",
                 atol=1e-5 * expected.abs().max().item())


# --- Exercise 11.3: target_swap_similarity(maps_first, maps_second) -> (N,); least_class_sensitive() -----
def _pearson(a, b):
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    norm = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(norm > 0, (a * b).sum(1) / norm.clamp(min=1e-300), torch.zeros_like(norm)).float()


@pytest.mark.exercise("11.3", points=3, functions=["target_swap_similarity"])
def test_target_swap_similarity_on_random_maps(submission):
    fresh_seed()
    n = int(torch.randint(2, 9, ()))
    a, b = torch.randn(n, 3, 5, 5), torch.randn(n, 3, 5, 5)
    b[0] = 2 * a[0] - 1                       # perfectly correlated
    got = call(submission.target_swap_similarity, a, b)
    check_tensor(got, (n,), "target_swap_similarity(...)")
    assert_close(got, _pearson(a, b), "target_swap_similarity(maps_first, maps_second)")


@pytest.mark.exercise("11.3", points=3, functions=["target_swap_similarity"])
def test_target_swap_similarity_of_a_flat_map_is_zero(submission):
    fresh_seed()
    a = torch.randn(3, 1, 4, 4)
    got = call(submission.target_swap_similarity, a, torch.ones(3, 1, 4, 4))
    assert_close(got, torch.zeros(3), "target_swap_similarity(maps, constant maps)")


@pytest.mark.exercise("11.3", points=3, functions=["least_class_sensitive"])
def test_least_class_sensitive_is_the_measured_one(submission):
    from xai_course import data, models
    from xai_course.attribution import deconvnet, guided_backprop, saliency

    model, images = models.load("digits_cnn"), data.digits("test").images[:48]
    with torch.no_grad():
        first, second = model(images).topk(2, dim=1).indices.T
    measured = {rule: _pearson(f(model, images, first), f(model, images, second)).mean().item()
                for rule, f in (("gradient", lambda m, x, t: saliency(m, x, t, abs=False)),
                                ("deconvnet", deconvnet), ("guided", guided_backprop))}
    answer = call(submission.least_class_sensitive)
    assert answer in measured, "answer 'gradient', 'deconvnet' or 'guided'"
    assert answer == max(measured, key=measured.get), \
        "measure it (chapter 11, Section 4.3): which rule's maps stay most alike?"
