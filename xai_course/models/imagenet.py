"""torchvision's ImageNet models, for the "in the wild" sections (Colab, or wherever weights are reachable)."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch
from torch import nn

PRETRAINED = ("vgg16", "resnet18", "resnet50", "alexnet", "densenet121", "mobilenet_v2")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PretrainedUnavailable(RuntimeError):
    """Raised when pretrained weights cannot be had (no internet and nothing cached)."""


class Normalized(nn.Module):
    """Wraps an ImageNet model so that it takes images in [0, 1]: attributions live in pixel space."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names, from torchvision's weight metadata (no download needed)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def pretrained(name: str = "resnet18", weights_path: str | Path | None = None,
               device: str | torch.device = "cpu") -> nn.Module:
    """A torchvision ImageNet model with pretrained weights, taking images in [0, 1], in eval mode.

    The weights come from ``weights_path`` when given (a state dict saved with ``torch.save``),
    otherwise from torchvision (its download, or the copy in torch's cache). Where neither is possible,
    as offline, this raises :class:`PretrainedUnavailable` with what to do instead.
    """
    import torchvision

    if name not in PRETRAINED:
        raise ValueError(f"name must be one of {PRETRAINED}, got {name!r}")
    if weights_path is not None:
        path = Path(weights_path)
        if not path.exists():
            raise FileNotFoundError(f"weights_path {str(path)!r} does not exist")
        model = torchvision.models.get_model(name, weights=None)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        try:  # torch.hub prints "Downloading: ..." and a progress bar: keep the pages clean
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                model = torchvision.models.get_model(name, weights="DEFAULT")
        except Exception as error:  # URLError, socket errors, HTTP errors, partial downloads...
            raise PretrainedUnavailable(
                f"could not get the pretrained ImageNet weights of {name!r} ({type(error).__name__}: "
                f"{error}). They are downloaded from the internet on first use: run this in Colab or on "
                f"a machine online, or pass weights_path= a state dict saved there. Offline, use the "
                f"course models instead: xai_course.models.load('shapes_cnn')."
            ) from None
    return Normalized(model).eval().to(device)
