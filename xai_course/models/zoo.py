"""The course models by name: what each is, what it is trained on, and how to load its shipped weights."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from ..data.shapes import CLASSES as SHAPE_CLASSES
from .architectures import DigitsCNN, DigitsMLP, ResNet, VGGNet

WEIGHTS_DIR = Path(__file__).parent / "weights"
CHECKSUMS = WEIGHTS_DIR / "checksums.json"


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build, train and document one course model."""

    name: str
    build: Callable[[], nn.Module]
    data: str  # "shapes" or "digits"
    input_shape: tuple  # (C, H, W) of one image
    classes: tuple
    description: str
    epochs: int
    lr: float = 2e-3
    # variants of the shapes training data, for the labs (see ``train._epoch_data``):
    spurious: Optional[float] = None  # ``shapes(spurious=...)`` in training (lab 17, bias detection)
    train_size: Optional[int] = None  # a fixed training set of this size, the same every epoch
    random_labels: bool = False  # that set's labels permuted once (lab 16, data randomisation)
    # train until the accuracy on the fixed training set reaches this target: after the one-cycle
    # ``epochs``, more epochs at a constant lr / 10 until the target or ``max_epochs`` in all
    train_accuracy_target: Optional[float] = None
    max_epochs: Optional[int] = None


MODELS = {
    spec.name: spec
    for spec in (
        ModelSpec("shapes_cnn", lambda: VGGNet(num_classes=5), "shapes", (3, 64, 64), SHAPE_CLASSES,
                  "VGG-like CNN: 3x3 convolutions, ReLU, max-pooling, dropout in the classifier", epochs=12),
        ModelSpec("shapes_resnet", lambda: ResNet(num_classes=5), "shapes", (3, 64, 64), SHAPE_CLASSES,
                  "small ResNet: BatchNorm, skip connections, in-place ReLUs, one ReLU module used twice "
                  "per block", epochs=12),
        # lab 17: the mark in the top-left corner goes with class 0 (circle) in 95% of the training
        # images (and with the other classes in 5%); the remedy sees it with every class alike
        ModelSpec("shapes_cnn_spurious", lambda: VGGNet(num_classes=5), "shapes", (3, 64, 64), SHAPE_CLASSES,
                  "shapes_cnn's architecture, trained on shapes with a spurious mark that goes with "
                  "class 0 (circle) in 95% of the images", epochs=12, spurious=0.95),
        ModelSpec("shapes_cnn_decorrelated", lambda: VGGNet(num_classes=5), "shapes", (3, 64, 64),
                  SHAPE_CLASSES, "shapes_cnn's architecture, trained with the spurious mark decorrelated "
                  "from the label (on half the images of every class)", epochs=12, spurious=0.5),
        # lab 16: Adebayo et al.'s data-randomisation test needs a model that memorised random labels
        ModelSpec("shapes_cnn_random_labels", lambda: VGGNet(num_classes=5), "shapes", (3, 64, 64),
                  SHAPE_CLASSES, "shapes_cnn's architecture, trained to memorise randomly permuted labels "
                  "of a fixed training set", epochs=60, train_size=1000, random_labels=True,
                  train_accuracy_target=0.99, max_epochs=200),
        ModelSpec("digits_cnn", DigitsCNN, "digits", (1, 16, 16), tuple(str(d) for d in range(10)),
                  "two conv-ReLU-max-pool stages and a 2-layer classifier", epochs=40),
        ModelSpec("digits_mlp", DigitsMLP, "digits", (1, 16, 16), tuple(str(d) for d in range(10)),
                  "ReLU perceptron with two hidden layers of 128 units", epochs=40),
    )
}


# models of the data rather than classifiers (chapter 10): name -> builder; trained by
# ``python -m xai_course.models.train NAME`` too (see :mod:`.generators`)
GENERATORS: dict = {"digits_vae": lambda: __import__(__package__ + ".generators", fromlist=["DigitsVAE"]).DigitsVAE()}


def spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a course model; a clear error names the models there are."""
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"name must be one of the course models {sorted(MODELS) + sorted(GENERATORS)}, "
                         f"got {name!r}")
    return MODELS[name]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name if name in GENERATORS else spec(name).name}.pt"


def load(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """A course model with its shipped, trained weights, in eval mode, on ``device``.

    Works offline: the weights are part of the package and are checked against their SHA-256
    checksum first. The model card ``weights/NAME.md`` says how the model was trained and how
    accurate it is; ``model.classes`` holds the class names. ``"digits_vae"`` is the generator of
    chapter 10 (a VAE; ``model.decode`` maps codes to digits), not a classifier.
    """
    s = None if isinstance(name, str) and name in GENERATORS else spec(name)
    path = weights_path(name)
    if not path.exists():
        raise FileNotFoundError(f"the weights of {name!r} are missing ({path}); retrain them with "
                                f"`python -m xai_course.models.train {name}`")
    expected = json.loads(CHECKSUMS.read_text()).get(name) if CHECKSUMS.exists() else None
    actual = sha256(path)
    if expected != actual:
        raise RuntimeError(f"the weights file {path} does not match its checksum in {CHECKSUMS} "
                           f"(expected {expected}, got {actual}); reinstall the package or retrain")
    model = GENERATORS[name]() if s is None else s.build()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    if s is not None:
        model.classes = s.classes
    return model.eval().to(device)
