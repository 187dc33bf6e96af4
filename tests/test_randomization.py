"""xai_course.evaluation.randomization: the randomised copies of Adebayo et al.'s model-parameter
randomisation test, and parity of the whole test with Quantus 0.6's MPRT."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hygiene import assert_unchanged, snapshot
from xai_course.attribution import saliency
from xai_course.evaluation import (data_randomization_test, model_randomization_test, parameter_layers,
                                   pixel_map, randomized_models, spearman)
from xai_course.evaluation.randomization import layer_seeds

ORDERS = ["cascading", "independent"]


def small_cnn(seed=0, batchnorm=False):
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 4, 3, padding=1)]
    layers += [nn.BatchNorm2d(4)] if batchnorm else []
    layers += [nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
               nn.Linear(6 * 4 * 4, 8), nn.ReLU(), nn.Linear(8, 3)]
    return nn.Sequential(*layers).eval()


def differing_layers(original, copy_):
    """Names of the layers whose parameters (or buffers) differ between the two models."""
    a, b = original.state_dict(), copy_.state_dict()
    return {k.rsplit(".", 1)[0] for k in a if not torch.equal(a[k], b[k])}


NAMES = ["0", "2", "6", "8"]  # the parameter layers of small_cnn, bottom first


def test_layers_are_modules_with_parameters_in_registration_order():
    assert [n for n, _ in parameter_layers(small_cnn())] == NAMES
    assert [n for n, _ in parameter_layers(small_cnn(batchnorm=True))] == ["0", "1", "3", "7", "9"]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("train", [False, True])
def test_the_original_is_untouched(order, train):
    model = small_cnn(batchnorm=True).train(train)
    model[0].weight.requires_grad_(False)
    before, rng = snapshot(model), torch.get_rng_state()
    pairs = list(randomized_models(model, order, seed=3))
    assert_unchanged(before, snapshot(model))
    assert torch.equal(rng, torch.get_rng_state()), "the global random state changed"
    for _, copy_ in pairs:
        assert copy_ is not model
        assert all(p is not q for p, q in zip(copy_.parameters(), model.parameters()))
        assert snapshot(copy_)["training"] == before["training"], "a copy lost the original's mode"
        assert snapshot(copy_)["requires_grad"] == before["requires_grad"]


def test_cascading_randomises_a_growing_prefix_from_the_top():
    model = small_cnn()
    pairs = list(randomized_models(model, "cascading", seed=0))
    assert [n for n, _ in pairs] == NAMES[::-1]
    for i, (_, copy_) in enumerate(pairs):
        assert differing_layers(model, copy_) == set(NAMES[::-1][:i + 1])


def test_independent_randomises_one_layer_at_a_time():
    model = small_cnn()
    pairs = list(randomized_models(model, "independent", seed=0))
    assert [n for n, _ in pairs] == NAMES[::-1]
    for name, copy_ in pairs:
        assert differing_layers(model, copy_) == {name}


def test_a_layer_gets_the_same_new_weights_in_both_orders_and_the_same_seed_the_same_copies():
    model = small_cnn()
    cascade = dict(randomized_models(model, "cascading", seed=5))
    independent = dict(randomized_models(model, "independent", seed=5))
    again = dict(randomized_models(model, "cascading", seed=5))
    other = dict(randomized_models(model, "cascading", seed=6))
    for name in NAMES:
        w = independent[name].get_submodule(name).weight
        assert torch.equal(cascade[name].get_submodule(name).weight, w)
        assert not torch.equal(other[name].get_submodule(name).weight, w)
        for k, v in cascade[name].state_dict().items():
            assert torch.equal(v, again[name].state_dict()[k])
    numpy_seed = dict(randomized_models(model, "cascading", seed=np.int64(5)))   # any integer type
    assert all(torch.equal(numpy_seed[n].get_submodule(n).weight, cascade[n].get_submodule(n).weight) for n in NAMES)


@pytest.mark.parametrize("order", ORDERS)
def test_one_working_copy_gives_the_same_models_as_fresh_copies(order):
    """copies=False (what model_randomization_test uses): at each step the working copy holds exactly
    the parameters and buffers of the fresh copy; the original stays untouched."""
    model = small_cnn(batchnorm=True)
    before = snapshot(model)
    fresh = list(randomized_models(model, order, seed=4))
    seen = set()
    for (name, working), (fresh_name, copy_) in zip(randomized_models(model, order, seed=4, copies=False), fresh):
        assert name == fresh_name and working is not model
        seen.add(id(working))
        a, b = working.state_dict(), copy_.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), f"step {name} differs"
    assert len(seen) == 1, "copies=False made more than one copy"
    assert_unchanged(before, snapshot(model))


def test_reset_parameters_is_the_layers_own_initialisation():
    model = small_cnn()
    (_, copy_), = [p for p in randomized_models(model, "independent", seed=11) if p[0] == "8"]
    with torch.random.fork_rng():
        torch.manual_seed(layer_seeds(11, 4)[NAMES.index("8")])
        fresh = nn.Linear(8, 3)
    assert torch.equal(copy_[8].weight, fresh.weight) and torch.equal(copy_[8].bias, fresh.bias)


def test_a_custom_layer_without_reset_parameters_is_redrawn():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = nn.Parameter(torch.full((4,), 2.0) + torch.arange(4.0))

        def forward(self, x):
            return x * self.gain

    model = nn.Sequential(nn.Linear(3, 4), Scale())
    (name, copy_), _ = list(randomized_models(model, seed=0))
    assert name == "1" and not torch.equal(copy_[1].gain, model[1].gain)
    assert torch.equal(copy_[0].weight, model[0].weight)


def test_a_constant_custom_parameter_is_redrawn_at_its_scale_not_zeroed():
    class Gain(nn.Module):  # a gain of ones: std 0, but not a zero parameter
        def __init__(self):
            super().__init__()
            self.gain = nn.Parameter(torch.ones(64))
            self.offset = nn.Parameter(torch.zeros(64))

        def forward(self, x):
            return x * self.gain + self.offset

    model = nn.Sequential(nn.Linear(3, 64), Gain())
    (name, copy_), _ = list(randomized_models(model, seed=0))
    gain = copy_[1].gain.detach()
    assert name == "1" and not torch.equal(gain, model[1].gain)
    assert gain.abs().sum() > 0 and 0.5 < gain.std() < 1.5     # at the scale |mean| = 1
    assert torch.equal(copy_[1].offset, torch.zeros(64))      # zeros stay zeros


class Tied(nn.Module):
    """An encoder and a decoder that share one weight (tied weights)."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(6, 6)
        self.decoder = nn.Linear(6, 6)
        self.decoder.weight = self.encoder.weight      # the same Parameter
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return self.head(self.decoder(torch.relu(self.encoder(x))))


def test_a_tied_parameter_belongs_to_its_first_owner():
    model = Tied()
    assert [n for n, _ in parameter_layers(model)] == ["encoder", "decoder", "head"]  # decoder: its bias
    model.decoder.bias = None
    assert [n for n, _ in parameter_layers(model)] == ["encoder", "head"]      # nothing of its own
    for order in ("cascading", "independent"):
        pairs = dict(randomized_models(model, order, seed=3))
        assert list(pairs) == ["head", "encoder"]
        copy_ = pairs["encoder"]
        assert copy_.decoder.weight is copy_.encoder.weight                # still tied
        assert not torch.equal(copy_.encoder.weight, model.encoder.weight)


def test_a_layer_that_shares_a_weight_keeps_it_and_redraws_only_its_own():
    model = Tied()
    pairs = dict(randomized_models(model, "independent", seed=5))
    copy_ = pairs["decoder"]                      # only the decoder's bias is its own
    assert torch.equal(copy_.encoder.weight, model.encoder.weight)        # shared: not redrawn
    assert copy_.decoder.weight is copy_.encoder.weight
    assert not torch.equal(copy_.decoder.bias, model.decoder.bias)
    cascade = dict(randomized_models(model, "cascading", seed=5))
    independent = dict(randomized_models(model, "independent", seed=5))
    assert torch.equal(cascade["encoder"].encoder.weight, independent["encoder"].encoder.weight)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(order="top_down"), ValueError, "order must be one of"),
    (dict(seed=-1), ValueError, "seed must be"),
    (dict(seed=1.5), ValueError, "seed must be"),
])
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        randomized_models(small_cnn(), **kwargs)


def test_bad_model():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        randomized_models("resnet")
    with pytest.raises(ValueError, match="no layers with parameters"):
        randomized_models(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="method must be"):
        model_randomization_test(small_cnn(), torch.rand(1, 3, 8, 8), 0, "no_such_method")


def test_model_randomization_test_compares_each_copy_with_the_original():
    model, x = small_cnn(), torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    result = model_randomization_test(model, x, 1, "saliency", seed=2, measures=["spearman"],
                                      options={"abs": False}, return_maps=True)
    assert result["layers"] == NAMES[::-1]
    assert result["scores"]["spearman"].shape == (4, 3) and result["maps"].shape == (5, 3, 3, 8, 8)
    for i, (_, copy_) in enumerate(randomized_models(model, seed=2)):
        expected = spearman(pixel_map(saliency(model, x, 1, abs=False)),
                            pixel_map(saliency(copy_, x, 1, abs=False)))
        torch.testing.assert_close(result["scores"]["spearman"][i], expected)
    same = data_randomization_test(model, model, x, 1, "saliency", measures=["spearman", "spearman_abs"])
    for values in same.values():
        torch.testing.assert_close(values, torch.ones(3))


# --- parity with Quantus 0.6 (MPRT, Adebayo et al.'s test as Quantus runs it) -------------------------

def _quantus_saliency(model, inputs, targets, **kwargs):
    """Quantus's explain_func: numpy in, the signed channel-summed gradient (N, 1, H, W) out."""
    x = torch.as_tensor(inputs, dtype=torch.float32)
    return pixel_map(saliency(model, x, torch.as_tensor(targets), abs=False))[:, None].numpy()


@pytest.mark.parametrize("order, quantus_order", [("cascading", "top_down"), ("independent", "independent")])
def test_parity_with_quantus_mprt(order, quantus_order, monkeypatch):
    quantus = pytest.importorskip("quantus")
    from quantus.helpers.model import pytorch_model

    model = small_cnn(seed=1)
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    seed = 17
    # Quantus re-initialises every layer after torch.manual_seed(its seed + 1); let it draw from the
    # seed ours gives that layer (seed + its index), in the order Quantus visits them
    visits = NAMES[::-1] if quantus_order == "top_down" else NAMES
    ours_per_layer = dict(zip(NAMES, layer_seeds(seed, len(NAMES))))
    queue = iter(ours_per_layer[name] for name in visits)

    class TorchWithOurSeeds:
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def manual_seed(seed):
            return torch.manual_seed(next(queue))

    monkeypatch.setattr(pytorch_model, "torch", TorchWithOurSeeds())
    metric = quantus.MPRT(similarity_func=quantus.similarity_func.correlation_spearman, layer_order=quantus_order,
                          abs=False, normalise=False, disable_warnings=True)
    a = _quantus_saliency(model, x.numpy(), y.numpy())
    theirs = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a,
                    explain_func=_quantus_saliency, batch_size=6)
    ours = model_randomization_test(model, x, y, "saliency", order=order, seed=seed, measures=["spearman"],
                                    options={"abs": False})
    assert set(theirs) - {"original"} == set(ours["layers"])
    for i, name in enumerate(ours["layers"]):
        np.testing.assert_allclose(ours["scores"]["spearman"][i].numpy(), np.asarray(theirs[name]), atol=1e-5)
