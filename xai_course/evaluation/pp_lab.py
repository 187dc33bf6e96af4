"""Lab 14, pixel perturbation: the experiment behind ``notebooks/14_pixel_perturbation.ipynb``.

``python -m xai_course.evaluation.pp_lab --full`` runs the full-scale experiment and writes
``xai_course/evaluation/results/pp_lab.json`` (the command, seed, versions, machine, seconds and every
number); without ``--full`` it runs the reduced scale that the lab notebook runs live (and writes
nothing unless ``--out`` is given). :func:`load_results` reads the shipped file for the notebook.

The protocol is report 001's (Srinivas & Fleuret's PP schemes as reproduced there): the held-out shapes
images, each explained for the model's predicted class by every method; the ``k%`` most salient
(original scheme) or least salient (augmented scheme) pixels replaced by black or by the image's mean;
AFOC, KL and PCUO (predicted class and the other classes) per fraction, mean, sd and s.e. over images.
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
REPORT_METHODS = ("fullgrad", "grad_cam", "input_x_gradient", "random_attribution")
SKIPPED = {  # methods of METHODS left out, and why
    "occlusion": "a window slid over every pixel: thousands of passes an image (150 s for 8 images here)",
    "lime": "hundreds of perturbed samples per image, fitted one image at a time",
    "kernel_shap": "hundreds of perturbed samples per image, fitted one image at a time",
    "shapley_values": "exact Shapley values: 2^M coalitions per image",
    "xrai": "segments and integrated gradients over many baselines per image",
}
REDUCED = dict(n=8, fractions=(0.02, 0.05, 0.1, 0.25, 0.5), steps=8, samples=16, subset=0.05,
               ig_steps=16, smoothgrad_samples=10)
FULL = dict(n=48, fractions=(0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
            steps=20, samples=50, subset=0.05, ig_steps=32, smoothgrad_samples=32)
METRICS = ("afoc", "kl", "pcuo", "pcuo_others")
FILLS = ("black", "mean")
ORDERS = ("most", "least")
COMPARED = ("fullgrad", "grad_cam", "input_x_gradient", "random_attribution", "saliency", "integrated_gradients",
            "smoothgrad", "deeplift", "deepshap", "gradient_shap", "guided_backprop", "deconvnet", "guided_grad_cam",
            "lrp")  # every method of METHODS but the SKIPPED ones, in the order of the results


def method_options(scale: dict, seed: int) -> dict:
    """The methods the lab compares (those of ``METHODS`` not in :data:`SKIPPED`, in :data:`COMPARED`'s
    order) and the options each is called with on ``shapes_cnn``: the labs' shared table
    (:func:`.lab_options.method_options`) with the scale's ``ig_steps`` integrated-gradients steps and
    ``smoothgrad_samples`` SmoothGrad samples (fewer in :data:`REDUCED`, the notebook's live run, than
    in :data:`FULL`), 8 GradientSHAP samples, and a black image as the one baseline of DeepSHAP and
    GradientSHAP."""
    black = torch.zeros(1, 3, 64, 64)
    options = lab_options.method_options(seed=seed, steps=scale["ig_steps"], samples=scale["smoothgrad_samples"],
                                         baseline_samples=8, background=black)
    return {name: options[name] for name in COMPARED}


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
    options = method_options(scale, seed)
    names = list(methods or options)
    hw = x.shape[2] * x.shape[3]
    out = {"config": {"model": model_name, "images": f"data.shapes({scale['n']}, seed={TEST_SEED})",
                      "target": "the predicted class", **{k: list(v) if isinstance(v, tuple) else v
                                                         for k, v in scale.items()}},
           "methods": names, "skipped": SKIPPED, "accuracy": float((predicted == d.labels).double().mean()),
           "pp": {}, "insertion": {}, "deletion": {}, "faithfulness": {}, "pointing_game": {},
           "relevance_mass": {}, "iou": {}, "attribution_seconds": {}}
    for name in names:
        t = time.time()
        signed = METHODS[name](model, x, predicted, **options[name]).detach().sum(1, keepdim=True)
        a = signed.abs()        # saliency = magnitude: PP, insertion/deletion and localisation rank |map|
        out["attribution_seconds"][name] = round(time.time() - t, 2)
        out["pp"][name] = {fill: {order: {m: stats(v) for m, v in pixel_perturbation(
            model, x, predicted, a, scale["fractions"], order=order, fill=fill, seed=seed).items()
            if m in METRICS} for order in ORDERS} for fill in FILLS}
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


def _curve(results, method, fill, order, metric="afoc"):
    return results["pp"][method][fill][order][metric]


def findings(results: dict) -> dict:
    """The report's three claims, computed on ``results`` (of :func:`run`
    or :func:`load_results`).

    1. *Differences between the four methods are mostly within one
       standard deviation*: the share of (method pair, fill, order,
       metric, fraction) comparisons with |Δ mean| ≤ the larger sd;
       holds if over half.
    2. *Mean fill reduces artifacts*: on the least-salient scheme (a
       perfect map changes nothing) the AFOC averaged over fractions is
       lower with mean fill than with black, for every method.
    3. *FullGrad is better on the least-salient scheme*: with mean fill,
       FullGrad has the lowest AFOC and the lowest PCUO (averaged over
       fractions) of the four methods.
    """
    four = [m for m in REPORT_METHODS if m in results["pp"]]
    within = total = 0
    for i, a in enumerate(four):
        for b in four[i + 1:]:
            for fill in FILLS:
                for order in ORDERS:
                    for metric in ("afoc", "kl", "pcuo"):
                        ca, cb = _curve(results, a, fill, order, metric), _curve(results, b, fill, order, metric)
                        for ma, sa, mb, sb in zip(ca["mean"], ca["sd"], cb["mean"], cb["sd"]):
                            within += abs(ma - mb) <= max(sa, sb)
                            total += 1
    share = within / max(1, total)

    def average(method, fill, order, metric="afoc"):
        values = _curve(results, method, fill, order, metric)["mean"]
        return sum(values) / len(values)

    lower = {m: average(m, "mean", "least") < average(m, "black", "least") for m in results["pp"]}
    least = {metric: {m: average(m, "mean", "least", metric) for m in four} for metric in ("afoc", "pcuo")}
    best = {metric: min(v, key=v.get) for metric, v in least.items()}
    return {
        "within_one_sd": {"share": share, "comparisons": total, "holds": share > 0.5},
        "mean_fill_reduces_artifacts": {"methods_lower_with_mean": sum(lower.values()), "methods": len(lower),
                                        "per_method": lower, "holds": all(lower.values())},
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
    print(f"{results['seconds']} s; within one sd: {f['within_one_sd']['share']:.2f}; mean fill lower: "
          f"{f['mean_fill_reduces_artifacts']['methods_lower_with_mean']}/{f['mean_fill_reduces_artifacts']['methods']}; "
          f"best on least-salient: {f['fullgrad_best_least_salient']['best']}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
