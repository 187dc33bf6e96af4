"""Bias detection (lab 17): the course's version of the doctor/nurse study of the reproducibility report.

``shapes_cnn_spurious`` was trained on shapes where a small bright mark in the top-left corner goes
with class 0 (circle) in 95% of the images; ``shapes_cnn_decorrelated`` (the remedy) saw the mark on
half the images of every class. The lab asks whether the model uses the mark and whether the saliency
maps show it:

- :func:`test_sets`: the SAME test images three times: the mark ``"aligned"`` (on every image of the
  cue class, on no other: the direction of training), ``"flipped"`` (on every other image, on none
  of the cue class) and ``"absent"``;
- :func:`accuracies` per condition (all images, the cue class, the others) and :func:`fairness_gap`,
  accuracy with the mark aligned minus accuracy with it flipped;
- :func:`attribution_maps` of every method in ``METHODS`` (:func:`method_options` pins their
  options for the course CNN) and :func:`mark_scores`: relevance mass on the mark and on the object,
  the top-k IoU with the mark, the pointing game, and :func:`half_mass_area` (how tight a map is);
- :func:`study` runs it all at one scale; ``python -m xai_course.evaluation.bias_lab --full`` writes
  ``results/bias_lab.json`` (:func:`load_results`), which the lab shows beside its live reduced run.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from .. import __version__
from ..attribution import METHODS
from ..data import shapes
from ..data.shapes import Dataset
from . import lab_options
from .localisation import iou_top_k, pixel_map, pointing_game, relevance_mass

MODELS = ("shapes_cnn_spurious", "shapes_cnn_decorrelated")
CONDITIONS = {"aligned": 1.0, "flipped": 0.0, "absent": None}  # shapes(spurious=...) of each test set
TEST_SEED = 17_017  # never used in training (training: 1000 + epoch; the models' test set: 999999)
BACKGROUND_SEED = 17_018  # the few reference images of deepshap and gradient_shap
SCALES = {  # images per test set; images per lens (see LENSES) explained by every method
    "reduced": {"n_test": 500, "n_maps": 8, "methods": ("fullgrad", "grad_cam", "saliency", "input_x_gradient",
                                                           "integrated_gradients", "smoothgrad", "guided_backprop",
                                                           "random_attribution")},
    # exact Shapley values cost 2^M passes per image (M up to 16 superpixels here): the first 4 images
    "full": {"n_test": 2000, "n_maps": 16, "methods": tuple(sorted(METHODS)), "caps": {"shapley_values": 4}},
}
RESULTS = Path(__file__).parent / "results" / "bias_lab.json"


def test_sets(n: int = 500, seed: int = TEST_SEED,
              cue_class: int = 0) -> dict:
    """``{"aligned", "flipped", "absent"}`` -> :class:`~xai_course.data.shapes.Dataset`: the same ``n``
    images (``shapes(n, seed)``; the mark is drawn last) with the mark aligned, flipped or absent
    (``cue`` and ``cue_masks`` all False)."""
    # (lines within 79 characters: the lab prints this function)
    sets = {name: shapes(n, seed=seed, spurious=p, cue_class=cue_class)
            for name, p in CONDITIONS.items()}
    absent = sets["absent"]  # shapes(spurious=None) has no cue fields
    sets["absent"] = Dataset(absent.images, absent.labels, absent.masks,
                             absent.classes, torch.zeros(n, dtype=torch.bool),
                             torch.zeros_like(absent.masks))
    return sets


@torch.no_grad()
def predictions(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The model's predicted classes ``(N,)``, in eval mode (the model's own mode is restored)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor (N, C, H, W), got {getattr(images, 'shape', type(images))}")
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])
    finally:
        model.train(was_training)


def accuracies(model: torch.nn.Module, sets: dict, cue_class: int = 0) -> dict:
    """``{condition: {"all", "cue class", "other classes": accuracy}}`` on each of :func:`test_sets`."""
    if not isinstance(sets, dict) or not sets:
        raise ValueError("sets must be a non-empty dict {condition: Dataset}, as test_sets() returns")
    out = {}
    for name, data in sets.items():
        correct = predictions(model, data.images) == data.labels
        cue = data.labels == cue_class
        out[name] = {"all": correct.float().mean().item(), "cue class": correct[cue].float().mean().item(),
                     "other classes": correct[~cue].float().mean().item()}
    return out


def fairness_gap(model: torch.nn.Module, sets: dict = None, n: int = 500,
                 seed: int = TEST_SEED) -> float:
    """Accuracy with the mark aligned minus accuracy with the mark flipped, on the same images.

    Near 0 for a model that ignores the mark; large for one that learned it as a shortcut."""
    sets = test_sets(n, seed) if sets is None else sets
    missing = {"aligned", "flipped"} - set(sets)
    if missing:
        raise ValueError("sets must hold the conditions 'aligned' and "
                         f"'flipped', missing {sorted(missing)}")
    acc = accuracies(model, {k: sets[k] for k in ("aligned", "flipped")})
    return acc["aligned"]["all"] - acc["flipped"]["all"]


def method_options(name: str, seed: int = 0) -> dict:
    """The options with which the lab runs method ``name`` on the course VGGNet (64x64 shapes): the
    labs' shared table (:func:`.lab_options.method_options`) with 32 steps for IG and XRAI, 25
    SmoothGrad samples, 500 LIME and Kernel SHAP samples, occlusion at stride 4, and 4 unmarked shapes
    (``BACKGROUND_SEED``) as the background of DeepSHAP and GradientSHAP. The same at both scales
    (:data:`SCALES` changes the images and the methods); the other options keep the methods' defaults."""
    if name not in METHODS:
        raise ValueError(f"name must be a method in METHODS {sorted(METHODS)}, got {name!r}")
    background = shapes(4, seed=BACKGROUND_SEED).images  # unmarked reference images
    return lab_options.method_options(seed=seed, steps=32, samples=25, perturbation_samples=500, stride=4,
                                      background=background)[name]


def magnitude(attributions: torch.Tensor) -> torch.Tensor:
    """``|a|`` summed over channels, ``(N, 1, H, W)``: the maps as the report and chapter 13 show them."""
    return pixel_map(attributions.abs())[:, None]


def attribution_maps(model, images, target, methods=None, seed: int = 0) -> dict:
    """``{method: (N, 1, H, W) magnitude map}`` for the methods named (default: every one in METHODS)."""
    methods = sorted(METHODS) if methods is None else list(methods)
    return {m: magnitude(METHODS[m](model, images, target, **method_options(m, seed))) for m in methods}


def half_mass_area(maps: torch.Tensor, share: float = 0.5) -> torch.Tensor:
    """``(N,)``: the smallest fraction of the pixels whose largest (positive, channel-summed) values hold
    ``share`` of the map's positive mass. Small = tight. A map spread evenly over k of P pixels gives
    ceil(share·k)/P; a map with no positive value gives 1."""
    if not 0.0 < float(share) <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    a = pixel_map(maps).clamp(min=0).flatten(1)
    cumulative = a.sort(1, descending=True).values.cumsum(1)
    total = cumulative[:, -1:]
    # pixels until the share is reached
    needed = (cumulative < share * total * (1 - 1e-6)).sum(1) + 1
    return torch.where(total[:, 0] > 0, needed / a.shape[1],
                       torch.ones_like(total[:, 0]))


def mark_scores(maps: torch.Tensor, cue_masks: torch.Tensor,
                masks: torch.Tensor) -> dict:
    """Per image ``(N,)``: ``"mark"``/``"object"`` relevance mass on the mark / the object, ``"top-k IoU"``
    of the map's top-|mark| pixels with the mark and ``"top-k share"``, the share of those pixels on
    the mark (h hits of k: IoU = h / (2k - h), share = h / k = 2 IoU / (1 + IoU)), ``"pointing"`` (its
    peak on the mark) and ``"half area"`` (:func:`half_mass_area`)."""
    # k = the mark's size: h hits give IoU h / (2k - h)
    iou = iou_top_k(maps, cue_masks)
    return {"mark": relevance_mass(maps, cue_masks),
            "object": relevance_mass(maps, masks),
            "top-k IoU": iou, "top-k share": 2 * iou / (1 + iou),
            "pointing": pointing_game(maps, cue_masks).float(),
            "half area": half_mass_area(maps)}


LENSES = {  # which marked images are explained, always for the cue class (what speaks for "circle"?)
    "marked circles": ("aligned", True),  # the mark and the object agree (a doctor with a tie)
    "marked others": ("flipped", False),  # the mark on another class (a nurse with a tie)
}


def lens_images(sets: dict, lens: str, n: int, cue_class: int = 0):
    """``(images, cue_masks, masks)`` of the first ``n`` images of a lens (:data:`LENSES`)."""
    if lens not in LENSES:
        raise ValueError(f"lens must be one of {sorted(LENSES)}, got {lens!r}")
    condition, of_cue_class = LENSES[lens]
    data = sets[condition]
    keep = torch.nonzero((data.labels == cue_class) == of_cue_class)[:n, 0]
    return data.images[keep], data.cue_masks[keep], data.masks[keep]


def study(scale: str = "reduced", models: dict = None, seed: int = 0, verbose: bool = False) -> dict:
    """The whole lab at ``scale`` ("reduced" or "full"): accuracies and gaps per model; per model, lens
    and method the means (and standard errors, key + " se") of :func:`mark_scores` over the lens's images,
    explained for the cue class."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    from ..models import load

    setting = SCALES[scale]
    models = {name: load(name) for name in MODELS} if models is None else models
    sets = test_sets(setting["n_test"], TEST_SEED)
    results = {"scale": scale, "settings": {"caps": {}, **setting, "methods": list(setting["methods"]), "lenses": LENSES,
                                            "test_seed": TEST_SEED, "seed": seed, "conditions": CONDITIONS},
               "accuracy": {}, "fairness_gap": {}, "scores": {}}
    for name, model in models.items():
        results["accuracy"][name] = accuracies(model, sets)
        results["fairness_gap"][name] = fairness_gap(model, sets)
        results["scores"][name] = {lens: {} for lens in LENSES}
        for lens in LENSES:
            images, cue_masks, masks = lens_images(sets, lens, setting["n_maps"])
            for method in setting["methods"]:
                start = time.time()
                k = setting.get("caps", {}).get(method, len(images))
                maps = attribution_maps(model, images[:k], 0, [method], seed)[method]
                scores = mark_scores(maps, cue_masks[:k], masks[:k])
                row = {k: v.mean().item() for k, v in scores.items()}
                row.update({k + " se": (v.std() / len(v) ** 0.5).item() for k, v in scores.items()})
                results["scores"][name][lens][method] = {**row, "seconds": round(time.time() - start, 2)}
                if verbose:
                    print(f"{name}, {lens}, {method}: mark {row['mark']:.3f} ({time.time() - start:.1f} s)",
                          flush=True)
    results["verdicts"] = verdicts(results)
    return results


MIN_RATIO = 2.0  # "separates the models": the spurious model's mark mass at least this many times the remedy's
SIGNIFICANT = 6  # significant figures of the floats in the results file


def mark_ratio(spurious: dict, remedy: dict) -> float:
    """The spurious model's mean mass on the mark over the remedy's (``inf`` where the remedy's is 0)."""
    return spurious["mark"] / remedy["mark"] if remedy["mark"] > 0 else float("inf")


def verdicts(results: dict) -> dict:
    """The report's claims, computed per lens on the spurious model, among the methods other than the
    random map: are FullGrad's maps the tightest (smallest half-mass area), and do they put the most
    mass on the mark? Which methods "separate the models": mark mass on the spurious model above the
    remedy's by more than two combined standard errors *and* at least ``MIN_RATIO`` times as large (a
    difference that is significant but small, as for the class-blind maps, does not count)? The
    methods ranked by that ratio ("by ratio to the remedy", largest first). Is the spurious model's gap
    the larger?"""
    out = {"gap spurious > gap decorrelated":
           results["fairness_gap"][MODELS[0]] > results["fairness_gap"][MODELS[1]]}
    for lens, table in results["scores"][MODELS[0]].items():
        scores = {m: s for m, s in table.items() if m != "random_attribution"}
        if "fullgrad" not in scores:
            continue
        by_area = sorted(scores, key=lambda m: scores[m]["half area"])
        by_mark = sorted(scores, key=lambda m: -scores[m]["mark"])
        remedy = results["scores"][MODELS[1]][lens]
        by_ratio = sorted(scores, key=lambda m: -mark_ratio(scores[m], remedy[m]))
        separates = [m for m in scores if scores[m]["mark"] - remedy[m]["mark"]
                     > 2 * (scores[m]["mark se"] ** 2 + remedy[m]["mark se"] ** 2) ** 0.5
                     and mark_ratio(scores[m], remedy[m]) >= MIN_RATIO]
        out[lens] = {"tightest": by_area[0], "fullgrad rank by tightness": 1 + by_area.index("fullgrad"),
                     "most mass on the mark": by_mark[0], "fullgrad rank by mark mass": 1 + by_mark.index("fullgrad"),
                     "by ratio to the remedy": by_ratio, "min ratio": MIN_RATIO,
                     "methods ranked": len(scores), "separate the models": separates}
    return out


def _rounded(value):
    """Floats to ``SIGNIFICANT`` significant figures (not decimal places: a mass of 1e-4 keeps its
    digits, and ratios of small masses stay exact to that precision)."""
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT}g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return [_rounded(v) for v in value] if isinstance(value, (list, tuple)) else value


def load_results(path: Path = RESULTS) -> dict:
    """The shipped full-scale results (written by ``python -m xai_course.evaluation.bias_lab --full``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results at {path}; run `python -m xai_course.evaluation.bias_lab --full`")
    return json.loads(path.read_text())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Lab 17: bias detection on the shapes with a spurious mark.")
    parser.add_argument("--full", action="store_true", help="full scale; writes results/bias_lab.json")
    parser.add_argument("--out", type=Path, default=None, help="where to write the results (default: "
                                                               "results/bias_lab.json with --full, nowhere without)")
    args = parser.parse_args(argv)
    start = time.time()
    results = study("full" if args.full else "reduced", verbose=True)
    command = "python -m xai_course.evaluation.bias_lab" + (" --full" if args.full else "")
    results = {"command": command, **results, "seconds": round(time.time() - start, 1),
               "versions": {"xai_course": __version__, "torch": torch.__version__, "python": platform.python_version()},
               "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, {platform.system()}"}
    results = _rounded(results)
    out = args.out if args.out is not None else (RESULTS if args.full else None)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {out}")
    json.dump({k: results[k] for k in ("fairness_gap", "verdicts", "seconds")}, sys.stdout, indent=1)
    print()
    return results


if __name__ == "__main__":
    main()
