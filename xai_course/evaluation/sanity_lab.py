"""Lab 16: sanity checks for saliency maps (Adebayo et al., 2018), for every method in ``METHODS``.

    python -m xai_course.evaluation.sanity_lab          # the reduced scale the lab notebook runs
    python -m xai_course.evaluation.sanity_lab --full   # full scale; writes results/sanity_lab.json

For each method: the cascading and the independent model-parameter randomisation test on the course
CNN ``shapes_cnn`` (similarity of the maps of each randomised copy to the trained model's maps, four
measures, per layer from the top), and the data-randomisation test (the maps of ``shapes_cnn`` against
those of ``shapes_cnn_random_labels``, the same architecture trained to memorise permuted labels).
Maps explain the trained model's predicted class, the same class for every copy.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from . import lab_options
from .randomization import model_randomization_test
from .similarity import MEASURES, map_similarities

RESULTS = Path(__file__).parent / "results" / "sanity_lab.json"
SEED = 0  # the randomisation seed; images are shapes(seed=IMAGES_SEED), background BACKGROUND_SEED
IMAGES_SEED, BACKGROUND_SEED = 16_016, 16_017
MODEL, RANDOM_LABELS_MODEL = "shapes_cnn", "shapes_cnn_random_labels"
SCALES = {"reduced": {"images": 3, "steps": 8, "samples": 4, "perturbation_samples": 32, "stride": 8, "cells": 2},
          "full": {"images": 12, "steps": 32, "samples": 16, "perturbation_samples": 200, "stride": 4, "cells": 3}}


def method_options(scale: str, images: torch.Tensor, background: torch.Tensor) -> dict:
    """``{method: options}`` for every method in ``METHODS`` at ``scale`` ("reduced" or "full"): the
    labs' shared table (:func:`.lab_options.method_options`) with this lab's choices.

    Both scales cut what costs most: the reduced scale (the notebook's) runs IG, XRAI and SmoothGrad
    with 8 steps / 4 samples, LIME and Kernel SHAP with 32 samples, occlusion (8x8 window) at stride
    8 and exact Shapley values on a 2x2 grid, on 3 images; the full scale with 32 steps / 16 samples,
    200 samples, stride 4 and a 3x3 grid, on 12 images. GradientSHAP draws as many samples as
    SmoothGrad, from ``background``, the baselines of DeepSHAP too. Superpixels (LIME, Kernel SHAP) and
    XRAI's segments depend on the images only, so they are computed once, not once per randomised model.
    Saliency is the signed gradient here (``abs=False``); the measures compare the maps both signed and
    absolute (``spearman`` and ``spearman_abs``).
    """
    s = SCALES[scale]
    return lab_options.method_options(
        seed=SEED, steps=s["steps"], samples=s["samples"], baseline_samples=s["samples"],
        perturbation_samples=s["perturbation_samples"], stride=s["stride"], cells=s["cells"],
        background=background, images=images, saliency_abs=False)


def run(scale: str = "reduced", methods=None, images: int = None, verbose: bool = False,
        return_maps: bool = False) -> dict:
    """The lab's experiment at ``scale``: ``{"config": ..., "methods": {name: {...}}}`` with, per method,
    ``"cascading"`` and ``"independent"`` (``{"layers": [...], "scores": {measure: [[...] per layer]}}``,
    the per-image scores) and ``"data"`` (``{measure: [per image]}``), plus seconds per method; with
    ``return_maps`` also ``"maps"``: a tensor (1 + layers, 1, C, H, W), the first image's maps of the
    trained model and of each cascading step, ``"independent_maps"`` the same for each independent step
    (one layer re-initialised), and ``"data_maps"`` (2, 1, C, H, W): trained, random labels.
    """
    from .. import models
    from ..attribution import METHODS
    from ..data import shapes

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    n = SCALES[scale]["images"] if images is None else int(images)
    model, random_model = models.load(MODEL), models.load(RANDOM_LABELS_MODEL)
    x = shapes(n, seed=IMAGES_SEED).images
    background = shapes(4, seed=BACKGROUND_SEED).images
    with torch.no_grad():
        target = model(x).argmax(1)
    options = method_options(scale, x, background)
    results = {}
    for name in options if methods is None else methods:
        start = time.perf_counter()
        entry = {}
        reference = METHODS[name](model, x, target, **options[name]).detach()
        for order in ("cascading", "independent"):
            r = model_randomization_test(model, x, target, name, order=order, seed=SEED, options=options[name],
                                         reference=reference, return_maps=return_maps)
            if "maps" in r:
                entry["maps" if order == "cascading" else "independent_maps"] = r["maps"][:, :1]
            entry[order] = {"layers": r["layers"], "scores": {m: v.tolist() for m, v in r["scores"].items()}}
        other = METHODS[name](random_model, x, target, **options[name]).detach()   # the data test
        entry["data"] = {m: v.tolist() for m, v in map_similarities(reference, other).items()}
        if return_maps:
            entry["data_maps"] = torch.stack([reference[:1], other[:1]])
        entry["seconds"] = round(time.perf_counter() - start, 2)
        results[name] = entry
        if verbose:
            print(f"{name}: {entry['seconds']} s", flush=True)
    config = {"scale": scale, "images": n, "images_seed": IMAGES_SEED, "background_seed": BACKGROUND_SEED,
              "seed": SEED, "model": MODEL, "random_labels_model": RANDOM_LABELS_MODEL,
              "target": "the trained model's predicted class", "measures": list(MEASURES),
              "options": {k: {o: (v if isinstance(v, (int, float, str)) else f"{type(v).__name__} (per image)")
                              for o, v in opts.items()} for k, opts in options.items()}}
    return {"config": config, "methods": results}


def images_for(results: dict) -> torch.Tensor:
    """The images a run explained, ``(N, 3, 64, 64)`` (drawn again from its seed)."""
    from ..data import shapes

    config = results["config"]
    return shapes(config["images"], seed=config["images_seed"]).images


def summary(results: dict, measure: str = "spearman_abs") -> dict:
    """``{method: {"cascading": [mean per layer], "independent": [...], "data": mean}}``: the mean over
    images of one measure, per layer from the top (first: only the output layer randomised)."""
    out = {}
    for name, entry in results["methods"].items():
        out[name] = {order: torch.tensor(entry[order]["scores"][measure]).mean(1).tolist()
                     for order in ("cascading", "independent")}
        out[name]["data"] = float(torch.tensor(entry["data"][measure]).mean())
    return out


def load_results(path: Path = RESULTS) -> dict:
    """The shipped full-scale results (written by ``--full``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `python -m xai_course.evaluation.sanity_lab --full`")
    return json.loads(path.read_text())


def _rounded(value, digits: int = 5):
    """The results with every float rounded to ``digits`` decimals (a smaller file, same numbers)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full scale; write " + str(RESULTS))
    parser.add_argument("--out", type=Path, default=RESULTS, help="where --full writes its results")
    args = parser.parse_args(argv)
    import xai_course

    start = time.perf_counter()
    results = run("full" if args.full else "reduced", verbose=True)
    seconds = round(time.perf_counter() - start, 1)
    results["run"] = {
        "command": "python -m xai_course.evaluation.sanity_lab" + (" --full" if args.full else ""),
        "seconds": seconds, "torch": torch.__version__, "xai_course": getattr(xai_course, "__version__", "dev"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    for name, values in summary(results).items():
        print(f"{name:22s} cascading {values['cascading'][-1]:+.2f}  data {values['data']:+.2f}")
    print(f"{seconds} s")
    if args.full:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(_rounded(results), indent=1) + "\n")
        print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
