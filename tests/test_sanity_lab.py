"""Lab 16's experiment module: the structure of its results, its options for every method, the shipped file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from xai_course.attribution import METHODS
from xai_course.evaluation import sanity_lab
from xai_course.evaluation.similarity import MEASURES

PUBLIC_TESTS = Path(__file__).resolve().parents[1] / "xai_course" / "grading" / "public"


def test_every_method_has_options_at_both_scales():
    images = sanity_lab.images_for({"config": {"images": 2, "images_seed": sanity_lab.IMAGES_SEED}})
    for scale in sanity_lab.SCALES:
        assert set(sanity_lab.method_options(scale, images, images[:1])) == set(METHODS)


def test_a_small_run_has_every_layer_and_measure():
    results = sanity_lab.run("reduced", methods=["saliency", "random_attribution"], images=1, return_maps=True)
    layers = ["classifier.4", "classifier.1", "features.8", "features.5", "features.3", "features.0"]
    for name, entry in results["methods"].items():
        for order in ("cascading", "independent"):
            assert entry[order]["layers"] == layers
            assert set(entry[order]["scores"]) == set(MEASURES)
            assert all(len(v) == 6 and len(v[0]) == 1 for v in entry[order]["scores"].values())
        assert set(entry["data"]) == set(MEASURES) and entry["maps"].shape == (7, 1, 3, 64, 64)
        assert entry["independent_maps"].shape == (7, 1, 3, 64, 64)
        assert torch.equal(entry["independent_maps"][0], entry["maps"][0])      # both start trained
        # the top layer alone is the first step of both orders
        assert torch.equal(entry["independent_maps"][1], entry["maps"][1])
    # a map that ignores the model is the same for every copy: similarity 1 everywhere
    summary = sanity_lab.summary(results)["random_attribution"]
    assert summary["cascading"] == pytest.approx([1.0] * 6) and summary["data"] == pytest.approx(1.0)
    assert summary != sanity_lab.summary(results)["saliency"]


def test_bad_scale():
    with pytest.raises(ValueError, match="scale must be one of"):
        sanity_lab.run("huge")


def test_the_shipped_full_results():
    results = sanity_lab.load_results()
    assert results["config"]["scale"] == "full" and set(results["methods"]) == set(METHODS)
    assert results["run"]["command"] == "python -m xai_course.evaluation.sanity_lab --full"
    for key in ("seconds", "torch", "machine", "date"):
        assert key in results["run"]
    n = results["config"]["images"]
    for entry in results["methods"].values():
        assert len(entry["cascading"]["scores"]["spearman_abs"][0]) == n
    json.dumps(results)  # plain data


def test_load_results_names_the_command_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="--full"):
        sanity_lab.load_results(tmp_path / "missing.json")


@pytest.mark.parametrize("function, code", [
    ("rank_correlation", "from scipy.stats import spearmanr\nimport torch\n\n"
     "def rank_correlation(a, b, absolute=False):\n"
     "    return torch.tensor([spearmanr(x, y)[0] for x, y in zip(a, b)])\n"),
    ("rank_correlation", "import scipy\n\ndef helper(a, b):\n    return scipy.stats.spearmanr(a, b)\n\n"
     "def rank_correlation(a, b, absolute=False):\n    return helper(a, b)\n"),
    ("global_ssim", "from skimage.metrics import structural_similarity\n\n"
     "def global_ssim(a, b, data_range):\n    return structural_similarity(a, b, data_range=data_range)\n"),
])
def test_the_grader_gives_no_credit_for_scipy_in_exercises_16_1_and_16_2(function, code):
    from xai_course.grading import forbidden, grader

    items = [i for i in grader.collect([PUBLIC_TESTS / "test_ch16.py"], [], None) if function in i.functions]
    assert items and all(i.forbid == ("scipy", "skimage", "pandas", "kornia") for i in items)   # every test
    assert forbidden.find(code, [function], items[0].forbid) is not None
    assert forbidden.find(code, [function]) is None                         # other exercises may use them
