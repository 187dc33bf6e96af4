"""Lab 14, pixel perturbation: the experiment behind ``notebooks/14_pixel_perturbation.ipynb``.

``python -m xai_course.evaluation.pp_lab --full`` runs the full-scale experiment and writes
``xai_course/evaluation/results/pp_lab.json`` (the command, seed, versions, machine, seconds and every
number); without ``--full`` it runs the reduced scale that the lab notebook runs live (and writes
nothing unless ``--out`` is given). :func:`load_results` reads the shipped file for the notebook.

The protocol is report 001's (Srinivas & Fleuret's PP schemes as reproduced there): the held-out shapes
images, each explained for the model's predicted class by every method; the ``k%`` most salient
(original scheme) or least salient (augmented scheme) pixels replaced by black or by the image's mean;
AFOC, KL and PCUO (AFOC and PCUO also averaged over the other classes; KL is one number for the whole
distribution) per fraction, mean, sd and s.e. over images, and what the model makes of the perturbed
images (the entropy of its softmax, the class it predicts, AFOC per originally predicted class).
Beside them: insertion/deletion AUCs, faithfulness correlation and localisation against the
ground-truth masks. "Salient" means a large magnitude: the pixel map ``|Σ_c a_c|`` ranks the pixels
for PP, insertion/deletion and localisation (otherwise the "least salient" pixels of a signed map
would be its strongest negative evidence); faithfulness correlation uses the signed ``Σ_c a_c``, as
its definition (sums of attributions against output drops) asks. :func:`findings` turns the numbers into the verdicts on the report's claims.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from . import lab_options

RESULTS = Path(__file__).with_name("results") / "pp_lab.json"
# the report's four: its "Input-Gradient" is the plain gradient (its footnote 8; FullGrad's reference code
# sums |dS/dx| over the channels), i.e. ``saliency`` with its default abs=True, not gradient x input
REPORT_METHODS = ("fullgrad", "grad_cam", "saliency", "random_attribution")
# the perturbation methods cost far more model passes an image than the gradient methods; the scales
# set how many (``stride`` of the 8x8 occlusion window, ``perturbation_samples`` of LIME and Kernel SHAP,
# ``cells``: exact Shapley values on a cells x cells grid of squares; None: on the default superpixels)
REDUCED = dict(n=8, fractions=(0.02, 0.05, 0.1, 0.25, 0.5), steps=8, samples=16, subset=0.05,
               ig_steps=16, smoothgrad_samples=10, stride=4, perturbation_samples=200, cells=3)
FULL = dict(n=48, fractions=(0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
            steps=20, samples=50, subset=0.05, ig_steps=32, smoothgrad_samples=32, stride=1,
            perturbation_samples=1000, cells=None)
METRICS = ("afoc", "afoc_others", "kl", "pcuo", "pcuo_others", "entropy")
FILLS = ("black", "mean")
ORDERS = ("most", "least")
COMPARED = ("fullgrad", "grad_cam", "saliency", "random_attribution", "input_x_gradient", "integrated_gradients",
            "smoothgrad", "deeplift", "deepshap", "gradient_shap", "guided_backprop", "deconvnet", "guided_grad_cam",
            "lrp", "occlusion", "lime", "kernel_shap", "shapley_values", "xrai")  # every method of METHODS
PERTURBATION_METHODS = ("occlusion", "lime", "kernel_shap", "shapley_values", "xrai")


def method_options(scale: dict, seed: int, images: torch.Tensor = None) -> dict:
    """The methods the lab compares (every method of ``METHODS``, in :data:`COMPARED`'s order) and the
    options each is called with on ``shapes_cnn``: the labs' shared table
    (:func:`.lab_options.method_options`) with the scale's ``ig_steps`` integrated-gradients and XRAI
    steps, ``smoothgrad_samples`` SmoothGrad samples, ``stride`` of the 8x8 occlusion window,
    ``perturbation_samples`` of LIME and Kernel SHAP and ``cells`` (exact Shapley values on a grid of
    ``cells`` x ``cells`` squares; None: on the default superpixels), all smaller in :data:`REDUCED`,
    the notebook's live run, than in :data:`FULL`; 8 GradientSHAP samples, and a black image as the one
    baseline of DeepSHAP and GradientSHAP. ``images``: the images the options are for (LIME's and Kernel
    SHAP's superpixels, XRAI's segments and the Shapley grid are computed from them once; without them
    each method makes its own). Saliency keeps its default ``abs=True``: the report's input-gradient map."""
    black = torch.zeros(1, 3, 64, 64)
    options = lab_options.method_options(seed=seed, steps=scale["ig_steps"], samples=scale["smoothgrad_samples"],
                                         baseline_samples=8, background=black, stride=scale["stride"],
                                         perturbation_samples=scale["perturbation_samples"],
                                         cells=scale["cells"] if images is not None else None, images=images)
    return {name: options[name] for name in COMPARED}


def scale_table(scales=(("live (reduced)", REDUCED), ("full", FULL))) -> list:
    """Rows (method, option, value per scale) of what the scales set for the perturbation methods."""
    def players(scale):
        return "superpixels" if scale["cells"] is None else f"{scale['cells']}x{scale['cells']} grid"
    rows = [("occlusion", "8x8 window, stride", *[s["stride"] for _, s in scales]),
            ("lime, kernel_shap", "samples an image", *[s["perturbation_samples"] for _, s in scales]),
            ("shapley_values", "players", *[players(s) for _, s in scales]),
            ("integrated_gradients, xrai", "steps", *[s["ig_steps"] for _, s in scales]),
            ("smoothgrad", "samples", *[s["smoothgrad_samples"] for _, s in scales])]
    return rows


def stats(values: torch.Tensor, dim: int = -1) -> dict:
    """Mean, standard deviation and standard error over ``dim`` (the images), as lists of floats."""
    v = values.double()
    n = v.shape[dim]
    sd = v.std(dim) if n > 1 else torch.zeros_like(v.mean(dim))
    out = {"mean": v.mean(dim), "sd": sd, "se": sd / math.sqrt(n)}
    return {k: (t.tolist() if t.ndim else float(t)) for k, t in out.items()}


def run(scale: dict = REDUCED, seed: int = 0, model_name: str = "shapes_cnn", methods=None, verbose=False) -> dict:
    """The whole experiment at ``scale`` (:data:`REDUCED` or :data:`FULL`); a JSON-ready dict."""
    from .. import __version__, data, models
    from ..attribution import METHODS
    from ..models.train import TEST_SEED
    from . import (faithfulness_correlation, insertion_deletion, iou_top_k, pixel_perturbation,
                   pointing_game, relevance_mass)

    start = time.time()
    model = models.load(model_name)
    d = data.shapes(scale["n"], seed=TEST_SEED)
    x, masks = d.images, d.masks
    with torch.no_grad():
        predicted = model(x).argmax(1)
    options = method_options(scale, seed, images=x)
    names = list(methods or options)
    classes = list(d.classes)
    hw = x.shape[2] * x.shape[3]
    out = {"config": {"model": model_name, "images": f"data.shapes({scale['n']}, seed={TEST_SEED})",
                      "target": "the predicted class", **{k: list(v) if isinstance(v, tuple) else v
                                                         for k, v in scale.items()}},
           "methods": names, "classes": classes,
           "accuracy": float((predicted == d.labels).double().mean()),
           "predicted": [classes[int(c)] for c in predicted], "pp": {}, "perturbed": {}, "insertion": {},
           "deletion": {}, "faithfulness": {}, "pointing_game": {}, "relevance_mass": {}, "iou": {},
           "attribution_seconds": {}, "negative_share": {}}
    for name in names:
        t = time.time()
        signed = METHODS[name](model, x, predicted, **options[name]).detach().sum(1, keepdim=True)
        a = signed.abs()        # saliency = magnitude: PP, insertion/deletion and localisation rank |map|
        out["attribution_seconds"][name] = round(time.time() - t, 2)
        out["negative_share"][name] = float((signed < 0).double().mean())   # 0: a map without a sign
        out["pp"][name], out["perturbed"][name] = {}, {}
        for fill in FILLS:
            out["pp"][name][fill], out["perturbed"][name][fill] = {}, {}
            for order in ORDERS:
                pp = pixel_perturbation(model, x, predicted, a, scale["fractions"], order=order, fill=fill,
                                        seed=seed)
                out["pp"][name][fill][order] = {m: stats(pp[m]) for m in METRICS}
                out["perturbed"][name][fill][order] = perturbed_summary(pp, predicted, classes)
        ins, dele = insertion_deletion(model, x, predicted, a, steps=scale["steps"])
        out["insertion"][name], out["deletion"][name] = stats(ins), stats(dele)
        out["faithfulness"][name] = stats(faithfulness_correlation(
            model, x, predicted, signed, subset_size=max(1, round(scale["subset"] * hw)), samples=scale["samples"],
            seed=seed))
        out["pointing_game"][name] = stats(pointing_game(a, masks).double())
        out["relevance_mass"][name] = stats(relevance_mass(a, masks))
        out["iou"][name] = stats(iou_top_k(a, masks))
        if verbose:
            print(f"{name}: {time.time() - t:.1f} s", flush=True)
    out["seconds"] = round(time.time() - start, 1)
    out["versions"] = {"xai_course": __version__, "torch": torch.__version__, "python": platform.python_version()}
    out["machine"] = f"{platform.machine()}, {platform.system()}, {torch.get_num_threads()} torch threads"
    out["seed"] = seed
    out["findings"] = findings(out)
    return out


def perturbed_summary(pp: dict, predicted: torch.Tensor, classes) -> dict:
    """What the model makes of the perturbed images, per fraction (lists over the fractions):
    ``"argmax"`` {class: share of the images the model now gives that class}, and ``"afoc_by_class"``
    {originally predicted class: [its images, mean AFOC per fraction]}."""
    share = {c: (pp["predicted"] == i).double().mean(1).tolist() for i, c in enumerate(classes)}
    by_class = {}
    for i, c in enumerate(classes):
        mine = predicted == i
        if mine.any():
            by_class[c] = {"images": int(mine.sum()), "afoc": pp["afoc"][:, mine].double().mean(1).tolist()}
    return {"argmax": share, "afoc_by_class": by_class}


def _curve(results, method, fill, order, metric="afoc"):
    return results["pp"][method][fill][order][metric]


def findings(results: dict) -> dict:
    """The report's three claims, computed on ``results`` (of :func:`run`
    or :func:`load_results`).

    1. *Differences between the four methods are mostly within one
       standard deviation*: the share of (method pair, fill, order,
       metric, fraction) comparisons with |Δ mean| ≤ the larger sd;
       holds if over half. Also per scheme (fill, order), and the share
       whose mean ± s.e. bands overlap (|Δ mean| ≤ s.e. + s.e.).
    2. *Mean fill reduces artifacts*: the report reads "every method
       performs better with the mean" on both schemes. Least-salient
       scheme (a perfect map changes nothing): better is a lower AFOC
       (averaged over fractions) with mean fill than with black;
       most-salient scheme: better is a higher AFOC. Holds if every
       method is better with the mean on both schemes.
    3. *FullGrad is better on the least-salient scheme*: with mean fill,
       FullGrad has the lowest AFOC and the lowest PCUO (averaged over
       fractions) of the four methods.

    Claims 1 and 3 read those of the four methods that ``results`` has
    (a run without them: no comparisons, no best method, neither holds).
    """
    four = [m for m in REPORT_METHODS if m in results["pp"]]
    within = total = 0
    schemes = {}
    for fill in FILLS:
        for order in ORDERS:
            w = o = n = 0
            for i, a in enumerate(four):
                for b in four[i + 1:]:
                    for metric in ("afoc", "kl", "pcuo"):
                        ca, cb = _curve(results, a, fill, order, metric), _curve(results, b, fill, order, metric)
                        for ma, sa, ea, mb, sb, eb in zip(ca["mean"], ca["sd"], ca["se"],
                                                          cb["mean"], cb["sd"], cb["se"]):
                            w += abs(ma - mb) <= max(sa, sb)
                            o += abs(ma - mb) <= ea + eb
                            n += 1
            schemes[f"{fill}/{order}"] = {"within_one_sd": w / max(1, n), "se_bands_overlap": o / max(1, n),
                                          "comparisons": n}
            within, total = within + w, total + n
    share = within / max(1, total)

    def average(method, fill, order, metric="afoc"):
        values = _curve(results, method, fill, order, metric)["mean"]
        return sum(values) / len(values)

    methods = list(results["pp"])
    lower = {order: {m: average(m, "mean", order) < average(m, "black", order) for m in methods}
             for order in ORDERS}
    better = {"least": lower["least"], "most": {m: not v for m, v in lower["most"].items()}}
    least = {metric: {m: average(m, "mean", "least", metric) for m in four} for metric in ("afoc", "pcuo")}
    best = {metric: min(v, key=v.get) if v else None for metric, v in least.items()}  # None: none of the four ran
    return {
        "within_one_sd": {"share": share, "comparisons": total, "holds": share > 0.5, "per_scheme": schemes},
        "mean_fill_reduces_artifacts": {
            "methods": len(methods),
            "lower_with_mean": {order: sum(v.values()) for order, v in lower.items()},
            "better_with_mean": {order: sum(v.values()) for order, v in better.items()},
            "per_method": lower, "holds_per_scheme": {order: all(v.values()) for order, v in better.items()},
            "holds": all(all(v.values()) for v in better.values())},
        "fullgrad_best_least_salient": {"best": best, "average": least,
                                        "holds": all(b == "fullgrad" for b in best.values())},
    }


def load_results(path=None) -> dict:
    """The shipped full-scale results (``results/pp_lab.json``), as a dict."""
    return json.loads(Path(path or RESULTS).read_text())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m xai_course.evaluation.pp_lab", description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the full-scale experiment (writes the results file)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help=f"where to write the results (--full: {RESULTS})")
    args = parser.parse_args(argv)
    results = run(FULL if args.full else REDUCED, seed=args.seed, verbose=True)
    command = "python -m xai_course.evaluation.pp_lab" + (" --full" if args.full else "")
    results = {"command": command + (f" --seed {args.seed}" if args.seed else ""), **results}
    out = args.out or (RESULTS if args.full else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {out}")
    f = results["findings"]
    m = f["mean_fill_reduces_artifacts"]
    print(f"{results['seconds']} s; within one sd: {f['within_one_sd']['share']:.2f}; better with mean fill "
          f"(least, most salient): {m['better_with_mean']['least']}, {m['better_with_mean']['most']} of "
          f"{m['methods']}; best on least-salient: {f['fullgrad_best_least_salient']['best']}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
