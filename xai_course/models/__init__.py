"""Models: the course's small trained models (offline) and torchvision's pretrained ones (online).

- :func:`load` (``"shapes_cnn"``, ``"shapes_resnet"``, ``"digits_cnn"``, ``"digits_mlp"``): trained
  weights shipped in the package, checksummed, with a model card each in ``weights/``;
- ``load("digits_vae")`` and :func:`digits_prior`: a generator and a density of the digits (chapter 10);
- :func:`pretrained`: ImageNet models, raising :class:`PretrainedUnavailable` offline;
- :func:`train_model` and ``python -m xai_course.models.train NAME``: the code that made the weights.
"""
from .architectures import BasicBlock, DigitsCNN, DigitsMLP, ResNet, VGGNet
from .toys import Circle, Saturating
from .imagenet import PRETRAINED, Normalized, PretrainedUnavailable, imagenet_classes, pretrained
from .generators import DigitsVAE, GaussianPrior, digits_prior
from .zoo import GENERATORS, MODELS, ModelSpec, load, spec


def __getattr__(name):  # the training code loads lazily, so `python -m xai_course.models.train` runs cleanly
    if name in ("train_model", "evaluate"):
        from . import train

        return getattr(train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GENERATORS", "DigitsVAE", "GaussianPrior", "digits_prior", "MODELS", "ModelSpec", "load", "spec", "train_model", "evaluate", "pretrained", "PRETRAINED",
           "PretrainedUnavailable", "Normalized", "imagenet_classes",
           "VGGNet", "ResNet", "BasicBlock", "DigitsCNN", "DigitsMLP", "Circle", "Saturating"]
