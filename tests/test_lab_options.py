"""The labs' one table of method options (labs 14, 16, 17)."""
from __future__ import annotations

import pytest
import torch

from xai_course.attribution import METHODS
from xai_course.evaluation import bias_lab, lab_options, pp_lab, sanity_lab


def test_options_left_at_none_are_not_passed():
    options = lab_options.method_options(seed=3)
    assert list(options) == sorted(METHODS)
    assert options["grad_cam"] == options["guided_grad_cam"] == {"layer": "features.9"}
    assert options["smoothgrad"] == {"seed": 3} and options["occlusion"] == {"window": 8}
    assert options["saliency"] == options["shapley_values"] == options["integrated_gradients"] == {}


def test_segments_come_from_the_images():
    images = torch.rand(2, 3, 8, 8)
    options = lab_options.method_options(images=images, cells=2, perturbation_samples=5)
    grid = options["shapley_values"]["segments"]
    assert grid.shape == (8, 8) and grid.unique().tolist() == [0, 1, 2, 3] and grid[0, 0] == 0 and grid[7, 7] == 3
    assert options["lime"]["segments"] is options["kernel_shap"]["segments"]
    assert options["lime"]["samples"] == 5 and len(options["xrai"]["segments"]) == 2
    with pytest.raises(ValueError, match="cells"):
        lab_options.method_options(cells=2)


def test_the_labs_share_the_fixed_options():
    images = torch.rand(1, 3, 64, 64)
    tables = [pp_lab.method_options(pp_lab.REDUCED, seed=0), sanity_lab.method_options("reduced", images, images),
              {m: bias_lab.method_options(m) for m in METHODS}]
    for table in tables:
        assert table["grad_cam"] == {"layer": lab_options.GRAD_CAM_LAYER}
        assert table.get("occlusion", {"window": 8})["window"] == 8
    assert list(tables[0]) == list(pp_lab.COMPARED) and set(pp_lab.COMPARED) == set(METHODS)


def test_pp_lab_scales_set_the_perturbation_methods():
    images = torch.rand(2, 3, 64, 64)
    live = pp_lab.method_options(pp_lab.REDUCED, seed=0, images=images)
    full = pp_lab.method_options(pp_lab.FULL, seed=0, images=images)
    assert live["occlusion"] == {"window": 8, "stride": pp_lab.REDUCED["stride"]}
    assert full["occlusion"]["stride"] == 1 and full["lime"]["samples"] == full["kernel_shap"]["samples"] == 1000
    assert live["lime"]["samples"] == pp_lab.REDUCED["perturbation_samples"] < 1000
    assert live["shapley_values"]["segments"].unique().numel() == pp_lab.REDUCED["cells"] ** 2
    assert "segments" not in full["shapley_values"]                          # its default superpixels
    assert live["xrai"]["steps"] == pp_lab.REDUCED["ig_steps"] and len(full["xrai"]["segments"]) == 2
    rows = pp_lab.scale_table()
    assert ("shapley_values", "players", "3x3 grid", "superpixels") in rows
