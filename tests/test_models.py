"""xai_course.models: shipped weights (checksums, accuracy on unseen data), training code, pretrained loaders."""
from __future__ import annotations

import json
import urllib.error

import pytest
import torch
import torchvision

from xai_course import models
from xai_course.data import digits, shapes
from xai_course.models import imagenet, zoo
from xai_course.models.train import TEST_SEED, TRAIN_SEED, evaluate, save, train_model

NAMES = sorted(models.MODELS)


def test_the_course_has_the_models_the_guide_names():
    assert {"shapes_cnn", "shapes_resnet", "digits_cnn", "digits_mlp"} <= set(NAMES)
    cnn = models.load("shapes_cnn")
    assert any(isinstance(m, torch.nn.MaxPool2d) for m in cnn.modules())
    resnet = models.load("shapes_resnet")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in resnet.modules())
    assert all(m.inplace for m in resnet.modules() if isinstance(m, torch.nn.ReLU))


@pytest.mark.parametrize("name", NAMES)
def test_weights_ship_with_checksum_and_model_card(name):
    checksums = json.loads(zoo.CHECKSUMS.read_text())
    assert checksums[name] == zoo.sha256(zoo.weights_path(name))
    card = (zoo.WEIGHTS_DIR / f"{name}.md").read_text()
    for words in ("Architecture", "Training data", "Test accuracy", f"python -m xai_course.models.train {name}"):
        assert words in card
    assert zoo.weights_path(name).stat().st_size < 5_000_000  # a few MB at most


@pytest.mark.parametrize("name", NAMES)
def test_load_gives_eval_mode_model_with_classes(name):
    model = models.load(name)
    assert not any(m.training for m in model.modules())
    spec = models.spec(name)
    out = model(torch.rand(2, *spec.input_shape))
    assert out.shape == (2, len(spec.classes)) and model.classes == spec.classes


# seeds never used in training: the model's own test seed and two more
@pytest.mark.parametrize("name", ["shapes_cnn", "shapes_resnet"])
@pytest.mark.parametrize("seed", [TEST_SEED, 424_242, 31_337])
def test_shapes_models_accuracy_on_unseen_images(name, seed):
    assert not (TRAIN_SEED <= seed < TRAIN_SEED + 1000)
    data = shapes(1000, seed=seed)
    accuracy = evaluate(models.load(name), data.images, data.labels)
    assert accuracy >= 0.95, f"{name}: {accuracy:.3f} on shapes(seed={seed})"


@pytest.mark.parametrize("name", ["digits_cnn", "digits_mlp"])
def test_digits_models_accuracy_on_the_held_out_split(name):
    data = digits("test")
    assert evaluate(models.load(name), data.images, data.labels) >= 0.95


def test_a_corrupted_weights_file_is_refused(tmp_path, monkeypatch):
    for f in zoo.WEIGHTS_DIR.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "digits_mlp.pt").write_bytes(b"not the weights")
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(zoo, "CHECKSUMS", tmp_path / "checksums.json")
    with pytest.raises(RuntimeError, match="checksum"):
        models.load("digits_mlp")
    (tmp_path / "digits_mlp.pt").unlink()
    with pytest.raises(FileNotFoundError, match="python -m xai_course.models.train digits_mlp"):
        models.load("digits_mlp")


def test_unknown_model_name():
    with pytest.raises(ValueError, match="shapes_cnn"):
        models.load("vgg16")


def test_training_code_runs_and_saves(tmp_path):
    model, report = train_model("digits_mlp", epochs=2, verbose=False)
    assert report["epochs"] == 2 and 0.0 <= report["test_accuracy"] <= 1.0
    path = save("digits_mlp", model, report, tmp_path)
    assert json.loads((tmp_path / "checksums.json").read_text())["digits_mlp"] == zoo.sha256(path)
    assert "Test accuracy" in (tmp_path / "digits_mlp.md").read_text()
    fresh = models.DigitsMLP()
    fresh.load_state_dict(torch.load(path, weights_only=True))


def test_training_is_reproducible():
    a, _ = train_model("digits_mlp", epochs=1, verbose=False)
    b, _ = train_model("digits_mlp", epochs=1, verbose=False)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


def test_training_command_line(tmp_path, capsys):
    from xai_course.models.train import main

    main(["digits_mlp", "--epochs", "1", "--out", str(tmp_path)])
    assert (tmp_path / "digits_mlp.pt").exists() and "test accuracy" in capsys.readouterr().out


# ---------------------------------------------------------------- pretrained ImageNet models, offline
def _offline(*args, **kwargs):
    raise urllib.error.URLError("no internet here")


def test_pretrained_raises_one_clear_error_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    with pytest.raises(models.PretrainedUnavailable, match="Colab") as info:
        models.pretrained("resnet18")
    assert "shapes_cnn" in str(info.value) and info.value.__cause__ is None


def test_pretrained_loads_weights_from_torch_cache(tmp_path, monkeypatch):
    """The loading code, offline: the test writes a state dict where torchvision looks for it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    reference = torchvision.models.resnet18(weights=None)
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1])
    model = models.pretrained("resnet18")
    _check_wraps(model, reference)


def test_pretrained_loads_weights_from_a_file(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pt")
    _check_wraps(models.pretrained("resnet18", weights_path=tmp_path / "resnet18.pt"), reference)
    with pytest.raises(FileNotFoundError, match="weights_path"):
        models.pretrained("resnet18", weights_path=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="name"):
        models.pretrained("not_a_model")


def _check_wraps(model, reference):
    assert not model.training and isinstance(model, models.Normalized)
    reference.eval()
    x = torch.rand(1, 3, 64, 64)
    mean = torch.tensor(imagenet.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(imagenet.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference((x - mean) / std))


def test_imagenet_class_names_need_no_download():
    names = models.imagenet_classes()
    assert len(names) == 1000 and names[281] == "tabby"
