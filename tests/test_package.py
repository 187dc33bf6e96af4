"""Package-wide rules: from scratch (no reference library imported), a light import, plotting's one look."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from xai_course import plotting  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[1] / "xai_course"
REFERENCES = {"captum", "zennit", "saliency", "pytorch_grad_cam", "quantus", "shap", "lime"}


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_package_imports_no_reference_library(path):
    assert not (_imported_modules(path) & REFERENCES), f"{path} imports a reference library"


def test_importing_everything_loads_no_reference_library():
    code = ("import sys, xai_course, xai_course.attribution, xai_course.data, xai_course.models, "
            "xai_course.models.train, xai_course.plotting; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(REFERENCES)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_signed_maps_are_centred_on_zero_with_the_diverging_map():
    fig, ax = plt.subplots()
    a = torch.zeros(3, 8, 8)
    a[0, 0, 0], a[1, 4, 4] = 5.0, -1.0
    artist = plotting.show_attribution(ax, a)
    vmin, vmax = artist.get_clim()
    assert vmin == -vmax and artist.get_cmap().name == plotting.DIVERGING
    plt.close(fig)


def test_magnitudes_use_the_sequential_map_from_zero():
    fig, ax = plt.subplots()
    artist = plotting.show_attribution(ax, torch.rand(1, 3, 8, 8))
    assert artist.get_clim()[0] == 0 and artist.get_cmap().name == plotting.SEQUENTIAL
    plt.close(fig)


def test_to_map_reduces_channels():
    a = torch.tensor([[[1.0, -2.0]], [[1.0, 1.0]]])  # (C=2, H=1, W=2)
    signed, is_signed = plotting.to_map(a)
    assert is_signed and np.allclose(signed, [[2.0, -1.0]])
    magnitude, is_signed = plotting.to_map(a, signed=False)
    assert not is_signed and np.allclose(magnitude, [[2.0, 3.0]])


def test_percentile_limits_ignore_one_extreme_pixel():
    a = np.ones((100, 100))
    a[0, 0] = 1e6
    assert plotting.limits(a, signed=False)[1] < 10


def test_grid_is_labelled_and_checks_batch_sizes():
    images = torch.rand(2, 3, 8, 8)
    fig = plotting.attribution_grid(images, {"gradient": torch.randn(2, 3, 8, 8), "|gradient|": torch.rand(2, 3, 8, 8)},
                                    row_titles=["a", "b"])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["image", "gradient", "|gradient|"] and fig.axes[3].get_ylabel() == "b"
    plt.close(fig)
    with pytest.raises(ValueError, match="examples"):
        plotting.attribution_grid(images, {"x": torch.rand(3, 3, 8, 8)})


def test_overlay_and_grey_images():
    fig, (a, b) = plt.subplots(1, 2)
    plotting.show_image(a, torch.rand(1, 16, 16))
    plotting.overlay(b, torch.rand(3, 16, 16), torch.randn(3, 16, 16), title="overlay")
    assert b.get_title() == "overlay" and len(b.images) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="shape"):
        plotting.to_map(torch.rand(2, 2, 3, 8, 8))
