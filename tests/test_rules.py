"""The backward-rule engine (xai_course.attribution.rules): one TorchFunctionMode for guided backprop,
DeconvNet and DeepLIFT.

What the engine promises, checked here: the rules are gone after the block (also after an exception);
in-place, reused and functional ReLUs get the rule exactly like an out-of-place ReLU module; operations a
method cannot handle raise a clear ValueError; nothing is intercepted inside a backward pass; other torch
function modes (and nested engines) keep working.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from conftest import ARCHITECTURES
from hygiene import assert_unchanged, snapshot
from reference_twins import EXTRA_ARCHITECTURES, make_any_architecture
from xai_course.attribution import deeplift, deepshap, guided_backprop, saliency
from xai_course.attribution.rules import (OPERATIONS, DeconvReLU, GuidedReLU, Rule, backward_rules, refusing,
                                          vjp)


def mode_stack_depth() -> int:
    return torch._C._len_torch_function_stack()


def gradient(model, x, c=0):
    """The plain autograd gradient of logit c, outside any engine."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[:, c].sum(), x)
    return g


def ruled_gradient(rules, model, x, c=0, refuse=None):
    with backward_rules(rules, refuse):
        return gradient(model, x, c)


# ---------------------------------------------------------------- every spelling of ReLU
RELU_SPELLINGS = {
    "nn.ReLU": lambda: nn.ReLU(),
    "nn.ReLU(inplace=True)": lambda: nn.ReLU(inplace=True),
    "F.relu": lambda: F.relu,
    "torch.relu": lambda: torch.relu,
    "x.relu()": lambda: (lambda t: t.relu()),
    "x.relu_()": lambda: (lambda t: t.relu_()),
    "F.relu(x, inplace=True)": lambda: (lambda t: F.relu(t, inplace=True)),
    "F.relu(x, True)": lambda: (lambda t: F.relu(t, True)),
    "torch.relu_": lambda: torch.relu_,
    "F.relu_": lambda: F.relu_,
}


class SpelledReLUNet(nn.Module):
    """conv -> relu -> max-pool -> conv -> relu -> linear -> relu -> linear, with ReLU spelled one way.

    Every nonlinearity takes a Linear/Conv output directly, so DeepLIFT's RevealCancel applies too.
    ``shared``: one ReLU object for all three places (a module used three times).
    """

    def __init__(self, spelling: str, shared: bool = False, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1, self.conv2 = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(64, 10), nn.Linear(10, 3)
        make = RELU_SPELLINGS[spelling]
        one = make()
        self.acts = [one] * 3 if shared else [make() for _ in range(3)]
        if isinstance(one, nn.Module):           # register module ReLUs so the model owns them
            self.relus = nn.ModuleList(dict.fromkeys(self.acts))

    def forward(self, x):
        h = F.max_pool2d(self.acts[0](self.conv1(x)), 2)
        h = self.acts[1](self.conv2(h)).flatten(1)
        return self.fc2(self.acts[2](self.fc1(h)))


def spelled_inputs():
    return torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(5))


METHODS_ON_THE_ENGINE = {
    "guided_backprop": lambda m, x, t: guided_backprop(m, x, t),
    "deeplift_rescale": lambda m, x, t: deeplift(m, x, t, baseline="grey"),
    "deeplift_reveal_cancel": lambda m, x, t: deeplift(m, x, t, baseline="grey", rule="reveal_cancel"),
    "deconvnet": lambda m, x, t: ruled_gradient({"relu": DeconvReLU()}, m, x, 1),
    "saliency": lambda m, x, t: saliency(m, x, t, abs=False),
}


@pytest.mark.parametrize("spelling", [s for s in RELU_SPELLINGS if s != "nn.ReLU"])
@pytest.mark.parametrize("method", ["guided_backprop", "deeplift_rescale", "deeplift_reveal_cancel"])
def test_every_relu_spelling_gives_the_module_result(spelling, method):
    """In-place (module, x.relu_(), F.relu(inplace=True), torch.relu_) and functional ReLUs are handled like nn.ReLU."""
    x, target = spelled_inputs(), torch.tensor([0, 1, 2])
    expected = METHODS_ON_THE_ENGINE[method](SpelledReLUNet("nn.ReLU").eval(), x, target)
    got = METHODS_ON_THE_ENGINE[method](SpelledReLUNet(spelling).eval(), x, target)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("spelling", ["nn.ReLU(inplace=True)", "x.relu_()"])
@pytest.mark.parametrize("method", sorted(METHODS_ON_THE_ENGINE))
def test_a_relu_used_three_times_gets_independent_rules(spelling, method):
    """One ReLU object called at three places equals three separate ReLUs (a hook-based engine mixes them up)."""
    x, target = spelled_inputs(), torch.tensor([2, 0, 1])
    separate = METHODS_ON_THE_ENGINE[method](SpelledReLUNet(spelling).eval(), x, target)
    shared = METHODS_ON_THE_ENGINE[method](SpelledReLUNet(spelling, shared=True).eval(), x, target)
    torch.testing.assert_close(shared, separate, rtol=1e-6, atol=1e-7)


class Counting(Rule):
    """The gradient, counting how often the engine applies the rule and runs its backward."""

    def __init__(self):
        self.applied = self.backwards = 0

    def apply(self, engine, x, f, inplace, call):
        self.applied += 1
        return super().apply(engine, x, f, inplace, call)

    def backward(self, x, y, grad_y, f):
        self.backwards += 1
        torch.relu(x)                      # torch calls inside a backward pass must not be intercepted
        F.max_pool2d(x.reshape(1, 1, 1, -1), 1)
        return vjp(f, x, grad_y)           # vjp runs f = relu again: not intercepted either


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("spelling", ["nn.ReLU(inplace=True)", "F.relu(x, inplace=True)"])
def test_one_rule_application_per_call_and_nothing_intercepted_in_backward(spelling, shared):
    model, x = SpelledReLUNet(spelling, shared=shared).eval(), spelled_inputs()
    relu, pool = Counting(), Counting()
    got = ruled_gradient({"relu": relu, "max_pool": pool}, model, x, 2)
    assert (relu.applied, relu.backwards) == (3, 3)
    assert (pool.applied, pool.backwards) == (1, 1)
    torch.testing.assert_close(got, gradient(model, x, 2))   # Rule() is the ordinary chain rule


@pytest.mark.parametrize("arch", ARCHITECTURES + EXTRA_ARCHITECTURES)
def test_the_default_rule_is_the_chain_rule_for_every_operation_kind(arch):
    """Replacing every operation the engine knows (ReLU, max-pool, linear, conv, ...) by the plain ``Rule``
    changes nothing: the engine itself is transparent, whatever a model's operations are."""
    model, x, target = make_any_architecture(arch, n=1)
    c = int(target[0])
    counting = {k: Counting() for k in {op.kind for op in OPERATIONS.values()}}
    got = ruled_gradient(counting, model, x, c)
    torch.testing.assert_close(got, gradient(model, x, c), rtol=1e-5, atol=1e-6 * got.abs().max().item())
    assert counting["linear"].applied > 0
    assert counting["relu" if arch != "sigmoid_cnn" else "sigmoid"].applied > 0
    assert all(r.applied == r.backwards for r in counting.values())


class PoolThenInPlaceReLU(nn.Module):
    """An in-place ReLU overwriting the output of a max-pool and of a linear layer (operations with rules)."""

    def __init__(self, inplace: bool):
        super().__init__()
        torch.manual_seed(1)
        self.conv, self.inplace = nn.Conv2d(1, 3, 3, padding=1), inplace
        self.fc1, self.fc2 = nn.Linear(12, 6), nn.Linear(6, 2)

    def forward(self, x):
        h = F.relu(F.max_pool2d(self.conv(x), 2), inplace=self.inplace).flatten(1)
        return self.fc2(F.relu(self.fc1(h), inplace=self.inplace))


def test_an_in_place_relu_may_overwrite_the_output_of_an_operation_with_a_rule():
    x = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    in_place, out_of_place = PoolThenInPlaceReLU(True).eval(), PoolThenInPlaceReLU(False).eval()
    got, delta = deeplift(in_place, x, 1, return_delta=True)
    torch.testing.assert_close(got, deeplift(out_of_place, x, 1))
    assert delta.abs().max() < 1e-6
    everything = {k: Rule() for k in ("relu", "max_pool", "linear", "conv")}
    torch.testing.assert_close(ruled_gradient(everything, in_place, x, 1), gradient(out_of_place, x, 1))


# ---------------------------------------------------------------- known answers of the two ReLU rules
class HandNet(nn.Module):
    """h = ReLU(W1 x), y = w2 · h with W1 = [[1, -1], [2, 1], [-1, 1]], w2 = (1, -2, 3)."""

    def __init__(self):
        super().__init__()
        self.hidden, self.out = nn.Linear(2, 3, bias=False), nn.Linear(3, 1, bias=False)
        with torch.no_grad():
            self.hidden.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0], [-1.0, 1.0]]))
            self.out.weight.copy_(torch.tensor([[1.0, -2.0, 3.0]]))

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def test_guided_and_deconv_rules_by_hand():
    # at x = (2, 1): W1 x = (1, 5, -1), so the ReLUs are (on, on, off); the signal arriving at h is w2.
    #   gradient:  W1^T ((1, -2, 3) * (1, 1, 0))        = W1^T (1, -2, 0) = (-3, -3)
    #   guided:    W1^T (max(0, (1, -2, 3)) * (1, 1, 0)) = W1^T (1, 0, 0)  = (1, -1)
    #   deconv:    W1^T max(0, (1, -2, 3))               = W1^T (1, 0, 3)  = (-2, 2)
    model, x = HandNet().eval(), torch.tensor([[2.0, 1.0]])
    torch.testing.assert_close(gradient(model, x), torch.tensor([[-3.0, -3.0]]))
    torch.testing.assert_close(ruled_gradient({"relu": GuidedReLU()}, model, x), torch.tensor([[1.0, -1.0]]))
    torch.testing.assert_close(ruled_gradient({"relu": DeconvReLU()}, model, x), torch.tensor([[-2.0, 2.0]]))


def test_the_rule_sees_the_input_of_an_in_place_relu_as_it_was():
    seen = []

    class Spy(Rule):
        def backward(self, x, y, grad_y, f):
            seen.append((x.clone(), y.clone()))
            return super().backward(x, y, grad_y, f)

    x = torch.tensor([[-1.0, 2.0, -3.0]], requires_grad=True)
    with backward_rules({"relu": Spy()}):
        h = x * 1.0
        h.relu_()
        (g,) = torch.autograd.grad(h.sum(), x)
    torch.testing.assert_close(seen[0][0], torch.tensor([[-1.0, 2.0, -3.0]]))   # before the in-place op
    torch.testing.assert_close(seen[0][1], torch.tensor([[0.0, 2.0, 0.0]]))
    torch.testing.assert_close(g, torch.tensor([[0.0, 1.0, 0.0]]))


# ---------------------------------------------------------------- leaving the block
def test_rules_end_with_the_block():
    model, x = HandNet().eval(), torch.tensor([[2.0, 1.0]])
    depth = mode_stack_depth()
    with backward_rules({"relu": GuidedReLU()}) as engine:
        assert mode_stack_depth() == depth + 1
        y = model(x.requires_grad_(True))
    assert mode_stack_depth() == depth and engine.state == {}
    # the graph built inside keeps its rules; a new forward pass outside is plain autograd again
    torch.testing.assert_close(torch.autograd.grad(y.sum(), x)[0], torch.tensor([[1.0, -1.0]]))
    torch.testing.assert_close(gradient(model, x), torch.tensor([[-3.0, -3.0]]))


def test_rules_end_with_the_block_after_an_exception():
    model, x = HandNet().eval(), torch.tensor([[2.0, 1.0]])
    depth = mode_stack_depth()
    with pytest.raises(RuntimeError, match="boom"):
        with backward_rules({"relu": GuidedReLU()}) as engine:
            engine.state["anything"] = 1
            model(x)
            raise RuntimeError("boom")
    assert mode_stack_depth() == depth and engine.state == {}
    torch.testing.assert_close(gradient(model, x), torch.tensor([[-3.0, -3.0]]))


def test_a_backward_pass_inside_the_block_of_a_graph_built_outside_is_plain_autograd():
    """The rule is attached to the forward call: a block that holds only the backward pass changes nothing."""
    model, x = HandNet().eval(), torch.tensor([[2.0, 1.0]], requires_grad=True)
    y = model(x)
    with backward_rules({"relu": GuidedReLU()}):
        (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, torch.tensor([[-3.0, -3.0]]))


def test_methods_leave_no_mode_behind_even_when_they_fail():
    model = nn.Sequential(nn.Linear(4, 5), nn.GELU(), nn.Linear(5, 2)).eval()
    x, depth = torch.randn(3, 4), mode_stack_depth()
    before = snapshot(model)
    with pytest.raises(ValueError):
        deeplift(model, x, 0)
    assert mode_stack_depth() == depth
    assert_unchanged(before, snapshot(model))
    torch.testing.assert_close(saliency(model, x, 0, abs=False), gradient(model, x))


# ---------------------------------------------------------------- refusing what a method cannot handle
UNSUPPORTED = {
    "gelu": lambda: nn.GELU(),
    "silu": lambda: nn.SiLU(),
    "mish": lambda: nn.Mish(),
    "hardswish": lambda: nn.Hardswish(),
    "hardtanh": lambda: nn.Hardtanh(),
    "relu6": lambda: nn.ReLU6(),
    "softmax": lambda: nn.Softmax(dim=1),
    "log_softmax": lambda: nn.LogSoftmax(dim=1),
    "selu": lambda: nn.SELU(),
    "celu": lambda: nn.CELU(inplace=True),
    "prelu": lambda: nn.PReLU(),
    "logsigmoid": lambda: nn.LogSigmoid(),
    "hardsigmoid": lambda: nn.Hardsigmoid(),
    "softsign": lambda: nn.Softsign(),
    "threshold": lambda: nn.Threshold(0.1, 0.0),
    "softmin": lambda: nn.Softmin(dim=1),
    "torch.softmax": lambda: (lambda t: torch.softmax(t, 1)),
    "x.softmax": lambda: (lambda t: t.softmax(dim=1)),
}


class With(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.a, self.b, self.act = nn.Linear(4, 6), nn.Linear(6, 3), act

    def forward(self, x):
        return self.b(self.act(self.a(x)))


class EndsWith(With):
    """A model that outputs probabilities: the nonlinearity is the last operation."""

    def forward(self, x):
        return self.act(self.b(torch.relu(self.a(x))))


@pytest.mark.parametrize("where", [With, EndsWith])
@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
def test_deeplift_refuses_a_nonlinearity_it_has_no_rule_for(name, where, rule):
    model, x = where(UNSUPPORTED[name]()).eval(), torch.randn(2, 4)
    kind = "hardtanh" if name == "relu6" else name.split(".")[-1]
    with pytest.raises(ValueError, match=rf"DeepLIFT has no rule for the nonlinear operation '{kind}'"):
        deeplift(model, x, 0, rule=rule)
    with pytest.raises(ValueError, match="DeepLIFT has no rule"):
        deepshap(model, x, 0, torch.zeros(2, 4))


def test_guided_backprop_leaves_other_nonlinearities_to_the_gradient():
    model, x = With(nn.GELU()).eval(), torch.randn(5, 4)
    torch.testing.assert_close(guided_backprop(model, x, 1), gradient(model, x, 1))


def test_the_refuse_table_names_the_method_and_the_call():
    refuse = refusing(["relu", "gelu", "tanh"], "MyMethod", {"relu": GuidedReLU()})
    assert set(refuse) == {"gelu", "tanh"}
    model = With(nn.Tanh()).eval()
    with pytest.raises(ValueError, match=r"MyMethod has no rule for the nonlinear operation 'tanh'.*tanh"):
        ruled_gradient({"relu": GuidedReLU()}, model, torch.randn(2, 4), refuse=refuse)


class Pooling(nn.Module):
    def __init__(self, pool):
        super().__init__()
        self.pool = pool

    def forward(self, x):
        out = self.pool(x)
        return (out[0] if isinstance(out, tuple) else out).flatten(1)


@pytest.mark.parametrize("pool, words", [
    (nn.MaxPool2d(2, return_indices=True), "max-pooling that returns its indices"),
    (lambda t: F.max_pool2d(t, 2, return_indices=True), "max-pooling that returns its indices"),
    (lambda t: F.max_pool2d_with_indices(t, 2), "max-pooling that returns its indices"),
    (nn.AdaptiveMaxPool2d(2), "no rule for the nonlinear operation 'adaptive_max_pool'"),
    (nn.AdaptiveMaxPool2d(2, return_indices=True), "no rule for the nonlinear operation 'adaptive_max_pool'"),
    (nn.LPPool2d(2, 2), "no rule for the nonlinear operation 'lp_pool'"),
])
def test_poolings_deeplift_cannot_handle_are_refused_clearly(pool, words):
    """Not a silent fallback to the gradient (return_indices=True dispatches to another torch function)."""
    with pytest.raises(ValueError, match=words):
        deeplift(Pooling(pool).eval(), torch.rand(2, 1, 4, 4), 0)


# ---------------------------------------------------------------- other torch function modes
class Recording(TorchFunctionMode):
    """Another library's TorchFunctionMode: records the functions it sees and passes them on."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen.append(func)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("method", ["guided_backprop", "deeplift_rescale", "deeplift_reveal_cancel"])
def test_other_torch_function_modes_around_the_methods(method):
    model, x, target = SpelledReLUNet("nn.ReLU(inplace=True)").eval(), spelled_inputs(), torch.tensor([0, 1, 2])
    expected = METHODS_ON_THE_ENGINE[method](model, x, target)
    with Recording() as outer:
        got = METHODS_ON_THE_ENGINE[method](model, x, target)
    torch.testing.assert_close(got, expected)
    assert any(f in outer.seen for f in (F.relu, torch.relu, torch.relu_))   # the outer mode still sees the ReLU
    with torch.device("cpu"):       # a TorchFunctionMode PyTorch itself uses
        torch.testing.assert_close(METHODS_ON_THE_ENGINE[method](model, x, target), expected)


def test_a_mode_entered_inside_the_block():
    model, x = SpelledReLUNet("F.relu").eval(), spelled_inputs()
    expected = ruled_gradient({"relu": GuidedReLU()}, model, x, 1)
    with backward_rules({"relu": GuidedReLU()}), Recording() as inner:
        got = gradient(model, x, 1)
    torch.testing.assert_close(got, expected)
    assert F.relu in inner.seen
    assert not torch.allclose(expected, gradient(model, x, 1))


def test_nested_engines():
    depth = mode_stack_depth()
    model, x = SpelledReLUNet("nn.ReLU").eval(), spelled_inputs()
    guided = ruled_gradient({"relu": GuidedReLU()}, model, x, 1)
    # the innermost table wins for the operations it has ...
    with backward_rules({"relu": DeconvReLU()}), backward_rules({"relu": GuidedReLU()}):
        got = gradient(model, x, 1)
    torch.testing.assert_close(got, guided)
    # ... and passes the others on to the engine around it
    with backward_rules({"relu": DeconvReLU()}), backward_rules({"max_pool": Rule()}):
        got = gradient(model, x, 1)
    torch.testing.assert_close(got, ruled_gradient({"relu": DeconvReLU()}, model, x, 1))
    with pytest.raises(ValueError, match="no sigmoid here"):
        with backward_rules({}, {"sigmoid": "no sigmoid here"}), backward_rules({"relu": GuidedReLU()}):
            With(nn.Sigmoid()).eval()(torch.randn(2, 4))
    assert mode_stack_depth() == depth


@pytest.mark.parametrize("arch", ["resnet_style", "functional_cnn"])
def test_engine_methods_are_deterministic_and_batch_independent(arch):
    """The [x; x'] stacking of DeepLIFT and the per-call rules: each example's result is its own."""
    model, x, target = make_any_architecture(arch, n=3)
    for method in ("guided_backprop", "deeplift_rescale"):
        full = METHODS_ON_THE_ENGINE[method](model, x, target)
        torch.testing.assert_close(METHODS_ON_THE_ENGINE[method](model, x, target), full, rtol=0, atol=0)
        one = METHODS_ON_THE_ENGINE[method](model, x[1:2], target[1:2])
        torch.testing.assert_close(one, full[1:2], rtol=1e-4, atol=1e-6 * full.abs().max().item())
