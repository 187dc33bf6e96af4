"""Incremental inference (attribution/incremental.py), behind occlusion's masked evaluation: the box
geometry against dense convolutions, the crop and paste helpers, equality with the black-box
evaluation on every architecture and on layers chosen to break it (padding, dilation, stride above
the kernel, pooling, branches with different boxes, windows cut at the edge), and the models it must
refuse (hooks, untraceable forward passes, values changed in place while still read)."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import ALL_ARCHITECTURES, make
from xai_course.attribution import incremental
from xai_course.attribution.occlusion import occlusion


@pytest.fixture
def black_box(monkeypatch):
    """Evaluate every model as a black box (no plan), for the comparison."""
    def run(function, *args, **kwargs):
        with monkeypatch.context() as patch:
            patch.setattr(incremental, "plan", lambda *a, **k: None)
            return function(*args, **kwargs)
    return run


@pytest.fixture
def planned(monkeypatch):
    """Count the batches that ran incrementally."""
    runs = []
    original = incremental.Plan.run

    def run(self, *args):
        runs.append(len(args[0]))
        return original(self, *args)
    monkeypatch.setattr(incremental.Plan, "run", run)
    return runs


def assert_same(ours, black_box_result, model, x):
    # the same outputs up to float32 rounding: relative to the outputs, not to their differences
    with torch.no_grad():
        scale = model(x).abs().max().item()
    torch.testing.assert_close(ours, black_box_result, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("kernel, stride, padding, dilation",
                         [(3, 1, 1, 1), (3, 2, 1, 1), (1, 2, 0, 1), (5, 3, 2, 1), (3, 1, 2, 2), (2, 2, 0, 1),
                          (4, 1, 0, 1)])
def test_reach_holds_every_changed_output(kernel, stride, padding, dilation):
    """The box returned by _reach contains every output that a change inside [corner, corner + size)
    can alter, and lies inside the output."""
    extent_in = 13
    weight = torch.rand(1, 1, kernel, kernel) + 0.1    # positive: any change of the input shows
    for size, corner in itertools.product((1, 2, 4), range(extent_in)):
        if corner + size > extent_in:
            continue
        x = torch.zeros(1, 1, extent_in, 1)
        x[0, 0, corner:corner + size] = 1.0
        out = F.conv2d(x, weight[..., :1], stride=(stride, 1), padding=(padding, 0), dilation=(dilation, 1))
        extent = out.shape[2]
        changed = out[0, 0, :, 0].nonzero().flatten()
        top, rows = incremental._reach(torch.tensor([corner]), size, extent, kernel, stride, padding, dilation)
        assert 0 <= top.item() and top.item() + rows <= extent
        assert all(top.item() <= i < top.item() + rows for i in changed.tolist()), (size, corner, changed, top, rows)


def test_crop_and_paste():
    values = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).view(2, 3, 5, 6)
    index, top, left = torch.tensor([1, 0, 1]), torch.tensor([0, 2, 3]), torch.tensor([4, 1, 0])
    boxes = incremental.crop(values, index, top, left, 2, 2)
    for b in range(3):
        assert torch.equal(boxes[b], values[index[b], :, top[b]:top[b] + 2, left[b]:left[b] + 2])
    assert boxes.is_contiguous(memory_format=torch.channels_last)
    target = torch.zeros(3, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    patch = torch.ones(3, 3, 2, 2)
    # inside, at the corner, and half outside (the outside half is dropped)
    incremental.paste(target, torch.tensor([1, 0, -1]), torch.tensor([1, 2, 3]), patch)
    expected = torch.zeros(3, 3, 4, 4)
    expected[0, :, 1:3, 1:3] = 1
    expected[1, :, 0:2, 2:4] = 1
    expected[2, :, 0:1, 3:4] = 1
    assert torch.equal(target, expected)


class Branches(nn.Module):
    """Layers the box must pass: max pooling with padding, dilation, groups, a 1x1 stride-2 shortcut
    (stride above the kernel: some changed rows reach no output), average pooling, functional
    activations with arguments, a sum of two branches with different boxes, dropout and identity."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2)
        self.short = nn.Conv2d(8, 8, 1, stride=2)
        self.c = nn.Conv2d(8, 8, 5, stride=2, padding=2)
        self.bn = nn.BatchNorm2d(8)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.drop, self.same = nn.Dropout(0.5), nn.Identity()
        self.fc = nn.Linear(8 * 3, 4)

    def forward(self, x):
        h = self.pool(F.leaky_relu(self.a(x), 0.1))
        h = torch.sigmoid(self.b(h)) + h
        h = self.short(h) + self.c(h).relu()
        h = self.same(self.drop(self.avg(F.relu(self.bn(h)))))
        return self.fc(F.adaptive_avg_pool2d(h, (3, 1)).flatten(1))


def _branches(seed=0):
    torch.manual_seed(seed)
    model = Branches().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.2, 0.2)
        model.bn.running_var.uniform_(0.5, 1.5)
    return model, torch.rand(3, 3, 45, 58), torch.tensor([0, 3, 1])


@pytest.mark.parametrize("arch", [a for a in ALL_ARCHITECTURES if a not in ("mlp", "sigmoid_mlp")] + ["branches"])
def test_equals_black_box(arch, black_box, planned):
    model, x, target = _branches() if arch == "branches" else make(arch, n=2)
    side = x.shape[-1]
    cases = [(side // 4, side // 8 or 1, 0.0),          # small windows, those at the edge cut
             (3, 2, 0.3),
             ((1, 3, 4), (1, 2, 3), -0.5),              # one channel at a time, rectangular windows
             (side // 2 + 1, side // 4, "blurred")]     # big windows: the boxes soon cover the map
    if arch == "torchvision_resnet18":
        cases = cases[:1] + cases[-1:]
    for window, stride, baseline in cases:
        expected = black_box(occlusion, model, x, target, window, stride, baseline=baseline)
        runs = len(planned)
        ours = occlusion(model, x, target, window, stride, baseline=baseline)
        assert len(planned) > runs, "the model was not run incrementally"
        assert_same(ours, expected, model, x)


def test_tensor_baseline_and_batch_size(black_box, planned):
    model, x, target = make("course_cnn", n=2)
    baseline = torch.rand_like(x)
    expected = black_box(occlusion, model, x, target, 8, 4, baseline=baseline)
    ours = occlusion(model, x, target, 8, 4, baseline=baseline, batch_size=5)
    assert planned and max(planned) <= 5 and sum(planned) == 2 * (1 + 15 * 15)
    assert_same(ours, expected, model, x)


class Hooked(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


class Untraceable(Hooked):
    def forward(self, x):
        h = self.conv(x)
        if h.sum() > 0:            # control flow on a value: fx cannot trace it
            h = h.relu()
        return self.fc(h.mean((2, 3)))


class InPlace(Hooked):
    def forward(self, x):
        h = self.conv(x)
        g = F.relu(h, inplace=True)     # changes h, which the sum below reads again
        return self.fc((h + g).mean((2, 3)))


class Standardised(nn.Conv2d):
    """A convolution whose forward is its own: not to be replaced by F.conv2d on its weight."""

    def forward(self, x):
        w = self.weight - self.weight.mean((1, 2, 3), keepdim=True)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class WithStandardised(Hooked):
    def __init__(self):
        super().__init__()
        self.conv = Standardised(3, 4, 3, padding=1)


def test_refused_models_are_evaluated_as_black_boxes(black_box):
    x, target = torch.rand(2, 3, 12, 12), torch.tensor([0, 1])
    hooked = Hooked().eval()
    hooked.conv.register_forward_hook(lambda m, i, o: None)
    for model in (hooked, Untraceable().eval(), InPlace().eval()):
        assert incremental.plan(model, x) is None
        expected = black_box(occlusion, model, x, target, 4, 2)
        torch.testing.assert_close(occlusion(model, x, target, 4, 2), expected)
    # a subclass with its own forward is run as the model runs it (eagerly), never as a plain conv
    model = WithStandardised().eval()
    assert incremental.plan(model, x) is not None
    assert_same(occlusion(model, x, target, 4, 2), black_box(occlusion, model, x, target, 4, 2), model, x)
    with pytest.raises(AssertionError):     # (the difference matters: the check above can fail)
        plain = nn.Conv2d(3, 4, 3, padding=1).eval()
        plain.load_state_dict(model.conv.state_dict())
        torch.testing.assert_close(plain(x), model.conv(x))


def test_every_spatial_layer_of_branches_runs_locally(monkeypatch):
    """With a small window every layer before the global pooling works on boxes (so the comparison
    above exercises each rule), and the pooling onwards on full copies."""
    outcomes = {}
    original = incremental.Plan._local

    def local(self, node, env, example):
        value = original(self, node, env, example)
        outcomes.setdefault(node.name, set()).add(value is not None)
        return value
    monkeypatch.setattr(incremental.Plan, "_local", local)
    model, x, target = _branches()
    occlusion(model, x, target, 3, 2)
    assert outcomes.pop("adaptive_avg_pool2d") == {False}
    assert set(outcomes) == {"a", "leaky_relu", "pool", "b", "sigmoid", "add", "short", "c", "relu", "add_1", "bn",
                             "relu_1", "avg", "drop", "same"}
    assert all(v == {True} for v in outcomes.values()), outcomes


def test_keeps_only_the_activations_read_beyond_a_patch():
    """A convolution or BatchNorm output read only by the next activation function is not kept (its
    patch is all the local pass needs); the inputs of convolutions, poolings and sums are."""
    model, x, _ = make("torchvision_resnet18", n=1)
    plan = incremental.plan(model, x)
    kept = {n.name for n in plan.base}
    assert {"x", "relu", "maxpool", "layer1_0_relu", "layer1_0_bn2"} <= kept   # read by convs, pools, sums
    assert not {"conv1", "bn1", "layer1_0_conv1", "layer1_0_bn1", "add"} & kept  # by BatchNorm / ReLU only
    assert kept < {n.name for n in plan.shapes}


class ScalesInput(Hooked):
    def forward(self, x):
        return self.fc(self.conv(x.mul_(2)).mean((2, 3)))    # changes its input in place (its only reader)


def test_a_model_that_changes_its_input_in_place(black_box):
    """The unperturbed pass runs on a copy: the caller's inputs, and the images the copies are cut
    from, stay as they were."""
    torch.manual_seed(0)
    model, target = ScalesInput().eval(), torch.tensor([0, 1])
    x = (torch.rand(2, 3, 16, 16) - 0.5).contiguous(memory_format=torch.channels_last)
    before = x.clone()
    expected = black_box(occlusion, model, x.clone(), target, 4, 2)
    ours = occlusion(model, x, target, 4, 2)
    assert torch.equal(x, before)
    assert_same(ours, expected, model, before.clone())


def test_inference_mode(black_box):
    """Under torch.inference_mode, or on inputs made in it, the plan is made (its unperturbed pass
    outside inference mode, where tensors have version counters) and agrees with the black box."""
    torch.manual_seed(0)
    model, target = InPlace().eval(), torch.tensor([0, 1])     # (refused: in place, read elsewhere)
    plain = Hooked().eval()
    with torch.inference_mode():
        x = torch.rand(2, 3, 16, 16)
        assert incremental.plan(model, x) is None and incremental.plan(plain, x) is not None
        for m in (model, plain):
            assert_same(occlusion(m, x, target, 4, 2), black_box(occlusion, m, x, target, 4, 2), m, x)
    assert incremental.plan(plain, x) is not None
    assert_same(occlusion(plain, x, target, 4, 2), black_box(occlusion, plain, x, target, 4, 2), plain, x)


class OwnCall(Hooked):
    def __call__(self, x):
        return super().__call__(x * 2 - 1)


class Stores(Hooked):
    def forward(self, x):
        self.features = self.conv(x)         # (as a model kept for Grad-CAM might)
        return self.fc(self.features.mean((2, 3)))


class Varargs(Hooked):
    def forward(self, *xs):
        return self.fc(self.conv(xs[0]).mean((2, 3)))


class ThroughData(Hooked):
    def __init__(self):
        super().__init__()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        h = self.conv(x)
        h.data.mul_(2)                       # in place, without a version bump
        return self.fc((self.conv2(h) + h).mean((2, 3)))


def test_models_the_graph_does_not_describe(black_box):
    """A ``__call__`` or an instance ``forward`` of its own (fx traces the class's forward), a forward
    pass that sets attributes (tracing would leave proxies in them), ``*args`` (the placeholder is a
    tuple), a change through ``.data``, batch statistics: no plan, the black box's results, the model left as it was."""
    torch.manual_seed(0)
    x, target = torch.rand(2, 3, 16, 16), torch.tensor([0, 1])
    patched = Hooked().eval()
    original = patched.forward
    patched.forward = lambda inputs: original(inputs * 2 - 1)
    stores = Stores().eval()
    # (and a BatchNorm without running statistics: its outputs depend on the batch, the black box's batches
    # are the reference)
    batch_statistics = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), nn.Flatten(),
                                     nn.LazyLinear(2)).eval()
    batch_statistics(x)
    for model in (OwnCall().eval(), patched, stores, Varargs().eval(), ThroughData().eval(), batch_statistics):
        assert incremental.plan(model, x) is None, type(model).__name__
        assert_same(occlusion(model, x, target, 4, 2), black_box(occlusion, model, x, target, 4, 2), model, x)
    assert isinstance(stores.features, torch.Tensor)
    # a leaf module with its own forward runs as the model runs it, not as the plain convolution
    model = Hooked().eval()
    conv = model.conv
    conv.forward = lambda inputs: F.conv2d(inputs, conv.weight * 2, conv.bias, padding=1)
    assert incremental.plan(model, x) is not None
    assert_same(occlusion(model, x, target, 4, 2), black_box(occlusion, model, x, target, 4, 2), model, x)


def test_default_batch_is_bounded_for_tiny_windows():
    """The incremental batch grows as the window shrinks, but never past 16 full-image batches (the
    layers after the boxes run on full copies)."""
    from xai_course.attribution.masking import default_batch_size
    for side in (64, 224):
        x = torch.zeros(2, 3, side, side)
        full = default_batch_size(x)
        assert default_batch_size(x, 3 * 8 * 8) >= default_batch_size(x, 3 * 32 * 32) >= full
        assert default_batch_size(x, 3) <= 17 * full      # (16 times, up to the rounding of each)
