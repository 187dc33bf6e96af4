"""ROAR and ROAD (lab 15): known answers of the imputation, ROAR on a toy problem whose answer is known,
seeds, hygiene and bad input. Tiny data and models: seconds in all."""
import pytest
import torch
from torch import nn

from hygiene import assert_inputs_unchanged, assert_unchanged, inputs_snapshot, snapshot
from xai_course.evaluation import noisy_linear_imputation, perturb, road, roar, tiny_cnn
from xai_course.evaluation.retraining import RoarResult, removed_pixels, train_classifier


def hole(n=2, h=8, w=8, box=(3, 5, 2, 6)):
    removed = torch.zeros(n, 1, h, w, dtype=torch.bool)
    removed[:, :, box[0]:box[1], box[2]:box[3]] = True
    return removed


def test_a_pixel_among_constant_neighbours_becomes_that_constant():
    x = torch.full((3, 2, 6, 7), 0.25)
    x[:, 1] = -1.5
    x[0, :, 2, 3] = 9.0  # the removed pixel's own value must not matter
    removed = torch.zeros(3, 1, 6, 7, dtype=torch.bool)
    removed[0, 0, 2, 3] = removed[1, 0, 0, 0] = removed[2, 0, 5, 6] = True  # centre and two corners
    out = noisy_linear_imputation(x, removed, noise=0.0)
    assert torch.allclose(out[:, 0], torch.full_like(out[:, 0], 0.25), atol=1e-6)
    assert torch.allclose(out[:, 1], torch.full_like(out[:, 1], -1.5), atol=1e-6)


def test_a_hole_in_a_linear_ramp_is_filled_with_the_ramp():
    h, w = 9, 10
    ramp = (0.3 * torch.arange(w).view(1, 1, 1, w) - 0.2 * torch.arange(h).view(1, 1, h, 1)).expand(2, 3, h, w)
    ramp = ramp + torch.tensor([0.0, 1.0, -2.0]).view(1, 3, 1, 1)
    out = noisy_linear_imputation(ramp.contiguous(), hole(2, h, w, (2, 7, 3, 8)), noise=0.0)
    assert torch.allclose(out, ramp, atol=1e-5)


def test_a_hole_is_filled_between_its_borders_values():
    x = torch.rand(4, 3, 12, 12)
    removed = hole(4, 12, 12, (2, 9, 4, 10))
    out = noisy_linear_imputation(x, removed, noise=0.0)
    # a weighted mean of neighbours: the maximum principle
    assert (out <= x.amax(dim=(2, 3), keepdim=True) + 1e-6).all()
    assert (out >= x.amin(dim=(2, 3), keepdim=True) - 1e-6).all()


def test_exactly_the_removed_pixels_change_and_the_noise_is_seeded():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 16, 16)
    attributions = torch.randn(3, 1, 16, 16)
    removed = removed_pixels(x, attributions, 0.3)
    k = round(0.3 * 16 * 16)
    assert (removed.flatten(1).sum(1) == k).all()
    assert torch.equal(removed, perturb(x, attributions, 0.3, fill=-7.0)[:, :1] == -7.0)
    a = noisy_linear_imputation(x, removed, noise=0.05, seed=3)
    b = noisy_linear_imputation(x, removed, noise=0.05, seed=3)
    c = noisy_linear_imputation(x, removed, noise=0.05, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    changed = (a != x).any(1, keepdim=True)
    assert torch.equal(changed, removed)
    clean = noisy_linear_imputation(x, removed, noise=0.0)
    assert 0.03 < (a - clean)[removed.expand_as(a)].std() < 0.07


def test_imputation_bad_input():
    x = torch.rand(2, 3, 5, 5)
    with pytest.raises(ValueError, match="removed"):
        noisy_linear_imputation(x, torch.zeros(2, 1, 4, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="removed"):
        noisy_linear_imputation(x, torch.zeros(2, 1, 5, 5))
    with pytest.raises(ValueError, match="every pixel"):
        noisy_linear_imputation(x, torch.ones(2, 1, 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="noise"):
        noisy_linear_imputation(x, hole(2, 5, 5, (1, 2, 1, 2)), noise=-0.1)
    with pytest.raises(ValueError, match="inputs"):
        noisy_linear_imputation(torch.rand(2, 25), hole(2, 5, 5, (1, 2, 1, 2)))
    assert torch.equal(noisy_linear_imputation(x, torch.zeros(2, 5, 5, dtype=torch.bool)), x)


def toy(n, seed):
    """Class in known pixels: a 2x2 patch [[1, 0], [0, 1]] (class 1) or [[0, 1], [1, 0]] (class 0) at
    rows/columns 3-4 of 8x8 noise. Both patches have the same mean, so a mean fill leaks nothing."""
    g = torch.Generator().manual_seed(seed)
    x = 0.5 + 0.1 * torch.randn(n, 1, 8, 8, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    diagonal = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x[:, 0, 3:5, 3:5] = torch.where(y.view(-1, 1, 1) == 1, diagonal, 1 - diagonal)
    truth = torch.zeros(n, 1, 8, 8)
    truth[:, :, 3:5, 3:5] = 1.0
    return x, y, truth


def linear_model():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 2))


def test_roar_on_a_toy_problem_whose_answer_is_known():
    xtr, ytr, atr = toy(300, 0)
    xte, yte, ate = toy(200, 1)
    result = roar(linear_model, xtr, ytr, xte, yte, {"perfect": (atr, ate)}, fractions=[0.0, 4 / 64],
                  seeds=[0, 1], epochs=10, lr=0.05, batch_size=100)
    assert isinstance(result, RoarResult)
    assert result.methods == ("perfect", "random") and result.accuracy.shape == (2, 2, 2)
    acc = result.accuracy
    assert (acc[:, 0] > 0.95).all()  # nothing removed: the patch gives the class away
    assert (acc[0, 1] - 0.5).abs().max() < 0.15  # the 4 class pixels removed: chance
    assert (acc[1, 1] > 0.85).all()  # 4 random pixels removed: the patch mostly survives
    assert result.trainings == 2 + 2 * 2  # fraction 0 trained once per seed, shared
    mean, half = result.interval()
    assert mean.shape == half.shape == (2, 2) and (half >= 0).all()
    again = RoarResult.from_dict(result.to_dict())
    assert torch.equal(again.accuracy, result.accuracy) and again.methods == result.methods


def test_roar_and_training_are_deterministic_from_the_seed_and_leave_global_rng_alone():
    xtr, ytr, atr = toy(100, 0)
    xte, yte, ate = toy(50, 1)
    state = torch.get_rng_state()
    a = roar(linear_model, xtr, ytr, xte, yte, {"p": (atr, ate)}, [0.25], seeds=[3], epochs=2)
    assert torch.equal(torch.get_rng_state(), state)
    b = roar(linear_model, xtr, ytr, xte, yte, {"p": (atr, ate)}, [0.25], seeds=[3], epochs=2)
    assert torch.equal(a.accuracy, b.accuracy)
    m1 = train_classifier(lambda: tiny_cnn(2, 1, 4), xtr, ytr, epochs=1, seed=5)
    m2 = train_classifier(lambda: tiny_cnn(2, 1, 4), xtr, ytr, epochs=1, seed=5)
    for p, q in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(p, q)
    assert not m1.training


def test_tiny_cnn_shapes():
    model = tiny_cnn(5, 3, 4)
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 5)
    assert all(type(m).__module__.startswith("torch.nn") for m in model.modules())


def test_roar_bad_input():
    x, y, a = toy(20, 0)
    ok = dict(attributions={"p": (a, a)}, fractions=[0.1], seeds=[0], epochs=1)
    with pytest.raises(TypeError, match="make_model"):
        roar(None, x, y, x, y, **ok)
    with pytest.raises(ValueError, match="train_labels"):
        roar(linear_model, x, y.float(), x, y, **ok)
    with pytest.raises(ValueError, match="test_images"):
        roar(linear_model, x, y, x[:, 0], y, **ok)
    with pytest.raises(ValueError, match="pair"):
        roar(linear_model, x, y, x, y, **{**ok, "attributions": {"p": a}})
    with pytest.raises(ValueError, match="fraction"):
        roar(linear_model, x, y, x, y, **{**ok, "fractions": [1.5]})
    with pytest.raises(ValueError, match="seeds"):
        roar(linear_model, x, y, x, y, **{**ok, "seeds": []})
    with pytest.raises(ValueError, match="epochs"):
        roar(linear_model, x, y, x, y, **{**ok, "epochs": 0})
    with pytest.raises(ValueError, match="random"):
        roar(linear_model, x, y, x, y, **{**ok, "attributions": {"random": (a, a)}})
    with pytest.raises(ValueError, match="attributions"):
        roar(linear_model, x, y, x, y, **{**ok, "attributions": {"p": (a[:, :, :4], a)}})
    with pytest.raises(ValueError, match="lr"):
        roar(linear_model, x, y, x, y, **{**ok, "lr": -1.0})
    with pytest.raises(ValueError, match="batch_size"):
        roar(linear_model, x, y, x, y, **{**ok, "batch_size": 0})


def road_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()


def test_road_known_answers_and_hygiene():
    model = road_model()
    x = torch.rand(5, 3, 10, 10)
    target = torch.tensor([0, 1, 2, 0, 1])
    a = torch.randn(5, 3, 10, 10)
    before, xb = snapshot(model), inputs_snapshot(x)
    out = road(model, x, target, a, [0.0, 0.3, 0.6], seed=0, batch_size=2)
    assert_unchanged(before, snapshot(model))
    assert_inputs_unchanged(xb, x)
    assert out["probability"].shape == out["correct"].shape == (3, 5)
    with torch.no_grad():
        p = model(x).softmax(1)
    assert torch.allclose(out["probability"][0], p[range(5), target], atol=1e-6)  # nothing removed
    assert torch.equal(out["correct"][0], p.argmax(1) == target)
    again = road(model, x, target, a, [0.0, 0.3, 0.6], seed=0)
    assert torch.allclose(again["probability"], out["probability"], atol=1e-6)
    # by hand: the model on the imputed images
    removed = removed_pixels(x, a, 0.3)
    imputed = noisy_linear_imputation(x, removed, noise=0.0)
    no_noise = road(model, x, target, a, [0.3], noise=0.0)
    with torch.no_grad():
        expected = model(imputed).softmax(1)[range(5), target]
    assert torch.allclose(no_noise["probability"][0], expected, atol=1e-6)


def test_road_train_mode_model_is_restored_and_under_no_grad():
    model = road_model().train()
    x, a = torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8)
    before = snapshot(model)
    with pytest.warns(UserWarning, match="train mode"), torch.no_grad():
        road(model, x, 0, a, [0.5], order="random", seed=1)
    assert_unchanged(before, snapshot(model))


def test_road_bad_input():
    model, x, a = road_model(), torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="target"):
        road(model, x, 7, a, [0.5])
    with pytest.raises(ValueError, match="fraction"):
        road(model, x, 0, a, [-0.1])
    with pytest.raises(ValueError, match="every pixel"):
        road(model, x, 0, a, [1.0])
    with pytest.raises(ValueError, match="order"):
        road(model, x, 0, a, [0.5], order="best")
    with pytest.raises(ValueError, match="attributions"):
        road(model, x, 0, a[:, :, :4], [0.5])
    with pytest.raises(TypeError, match="model"):
        road("model", x, 0, a, [0.5])


def test_lab_verdicts_by_hand_and_the_shipped_results():
    from xai_course.evaluation import roar_lab

    method = torch.tensor([[0.5, 0.6, 0.7], [0.4, 0.5, 0.6]])  # (fractions, seeds)
    random = method + torch.tensor([[0.1], [0.3]])  # random higher at both fractions, every seed
    v = roar_lab.compare(method[1], random[1])
    assert v["verdict"] == "lower" and abs(v["difference"] - 0.3) < 1e-6 and v["half_width"] < 1e-5
    assert roar_lab.compare(random[0], method[0])["verdict"] == "higher"
    noisy = method + torch.tensor([[0.1, -0.1, 0.0], [0.1, -0.1, 0.0]])
    assert roar_lab.compare(method[0], noisy[0])["verdict"] == "no different"
    table = torch.stack([method, random])
    got = roar_lab.verdicts(table, ["m", "random"], [0.0, 0.5])
    assert got == {"m": {"fractions": [0.5], "per_fraction": [roar_lab.compare(method[1], random[1])],
                         "verdict": "lower"}}
    # lower at one fraction and higher at another: "mixed", never an average that cancels
    crossing = torch.stack([method, method + torch.tensor([[0.2], [-0.2]])])
    v = roar_lab.verdicts(crossing, ["m", "random"], [0.1, 0.9])["m"]
    assert [c["verdict"] for c in v["per_fraction"]] == ["lower", "higher"] and v["verdict"] == "mixed"
    assert roar_lab.overall(["no different", "lower"]) == "lower"
    assert roar_lab.overall(["no different", "no different"]) == "no different"
    assert roar_lab.overall(["higher", "no different"]) == "higher"
    # MoRF/LeRF rank consistency: the same order (low MoRF = high LeRF) gives 1, the reverse -1
    morf = torch.tensor([[0.2, 0.1], [0.5, 0.4], [0.8, 0.7]])
    assert abs(roar_lab.rank_consistency(morf, 1 - morf) - 1) < 1e-12
    assert abs(roar_lab.rank_consistency(morf, morf) + 1) < 1e-12
    shipped = roar_lab.load_results()
    assert shipped["command"] == "python -m xai_course.evaluation.roar_lab --full"
    result = shipped["roar_result"]
    assert result.accuracy.shape == (len(result.methods), len(result.fractions), len(result.seeds))
    assert set(shipped["verdicts"]["roar"]) == set(roar_lab.ALL) and shipped["torch"] and shipped["machine"]
    assert 0.7 in result.fractions and tuple(result.fractions) == roar_lab.SCALES["full"]["fractions"]
    assert shipped["seeds"]["smoothgrad_noise"] == roar_lab.NOISE_SEED
    assert str(roar_lab.ROAD_SEED) in shipped["seeds"]["road"]
    assert shipped["seeds"]["roar_training"] == list(result.seeds)
    road_shape = (len(shipped["road"]["methods"]), len(shipped["road"]["fractions"]))
    assert torch.tensor(shipped["road"]["lerf_accuracy"]).shape == road_shape


def test_lab_vargrad_is_the_variance_of_the_signed_gradient():
    """VarGrad (Adebayo et al.) is Var(g), not Var(|g|); SmoothGrad² is the mean of g²."""
    from xai_course.attribution._core import make_generator
    from xai_course.attribution.integrated_gradients import range_noise
    from xai_course.evaluation import roar_lab

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3)).eval()
    x, y, samples = torch.randn(2, 2, 5, 5), torch.tensor([0, 2]), 6
    got = roar_lab.explain(model, x, y, samples, ("smoothgrad_sq", "vargrad"))
    noisy = (x.unsqueeze(1) + range_noise(x, 0.15, samples, make_generator(roar_lab.NOISE_SEED, "cpu")))
    noisy = noisy.flatten(0, 1).requires_grad_(True)
    model(noisy).gather(1, y.repeat_interleave(samples)[:, None]).sum().backward()
    g = noisy.grad.view(2, samples, 2, 5, 5)  # signed gradients, per example and noisy copy
    assert (g < 0).any() and (g > 0).any()
    torch.testing.assert_close(got["vargrad"], g.var(1, unbiased=False), rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(got["smoothgrad_sq"], (g * g).mean(1), rtol=1e-4, atol=1e-8)
    assert not torch.allclose(got["vargrad"], g.abs().var(1, unbiased=False), rtol=1e-2, atol=1e-8)


def test_imputation_in_blocks_of_images_is_the_same(monkeypatch):
    import xai_course.evaluation.retraining as retraining

    torch.manual_seed(1)
    x = torch.rand(5, 3, 16, 16)
    removed = removed_pixels(x, torch.rand(5, 1, 16, 16), 0.6)
    together = noisy_linear_imputation(x, removed, noise=0.0)
    monkeypatch.setattr(retraining, "SOLVE_PIXELS", 2 * 16 * 16)  # two images per solve
    assert torch.allclose(noisy_linear_imputation(x, removed, noise=0.0), together, atol=1e-6)
