"""Lab 15's experiment: ROAR and ROAD on the shapes, for FullGrad, the input gradient, SmoothGrad²,
VarGrad and a random ranking.

    python -m xai_course.evaluation.roar_lab           # the reduced scale the notebook runs
    python -m xai_course.evaluation.roar_lab --full    # the full scale; writes results/roar_lab.json

The rankings come from the course model ``shapes_cnn`` (the model being explained), each image
explained for its true class. ROAR retrains :func:`~xai_course.evaluation.retraining.tiny_cnn` from
scratch for every method, fraction and seed; ROAD evaluates ``shapes_cnn`` itself on imputed images,
removing the most relevant pixels first (MoRF) and, at full scale, the least relevant first (LeRF).
:func:`load_results` gives the notebook the shipped full-scale numbers.
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

from ..attribution import METHODS
from ..data import shapes
from .retraining import RoarResult, road, roar, tiny_cnn

RESULTS = Path(__file__).parent / "results" / "roar_lab.json"
MODEL = "shapes_cnn"
TRAIN_SEED, TEST_SEED = 15_000, 15_001  # shapes seeds of the lab's data: no course model trained on them
NOISE_SEED = 0  # SmoothGrad²'s and VarGrad's noise (the same draws for both)
ROAD_SEED = 0   # ROAD: the random ranking and the imputation noise (seed + the fraction's index)
# the report's comparison (FullGrad, input gradient, random) plus Hooker et al.'s SmoothGrad² and VarGrad
LABELS = {"fullgrad": "FullGrad", "input_gradient": "input gradient", "smoothgrad_sq": "SmoothGrad²",
          "vargrad": "VarGrad", "random": "random"}
ALL = ("fullgrad", "input_gradient", "smoothgrad_sq", "vargrad")
SCALES = {  # the notebook's live run retrains only for the report's comparison (the trainings are the cost)
    "reduced": dict(train=500, test=200, fractions=(0.0, 0.3, 0.7), seeds=(0, 1, 2), epochs=8, batch_size=16,
                    samples=4, road_images=60, width=8, roar_methods=("fullgrad", "input_gradient"),
                    road_methods=ALL, road_orders=("most",)),  # the page shows LeRF at full scale only
    "full": dict(train=1500, test=500, fractions=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9), seeds=(0, 1, 2), epochs=12,
                 batch_size=25, samples=10, road_images=250, width=8, roar_methods=ALL, road_methods=ALL),
}


def lab_data(scale: dict):
    """``(train_images, train_labels, test_images, test_labels)`` of the lab at ``scale``."""
    train, test = shapes(scale["train"], seed=TRAIN_SEED), shapes(scale["test"], seed=TEST_SEED)
    return train.images, train.labels, test.images, test.labels


def explain(model, images, labels, samples: int, methods=ALL, batch_size: int = 100) -> dict:
    """``{method: attributions}`` of ``model`` for ``labels``, ``batch_size`` images at a time.

    FullGrad and the input gradient (|∂S_c/∂x|, the report's "Input-Gradient") are one pass each;
    SmoothGrad² (mean of g²) and VarGrad (variance of the *signed* gradient g, Adebayo et al.) use
    ``samples`` noisy gradients (noise 0.15, seed ``NOISE_SEED``). The wrapped ``saliency`` returns
    |g| by default, which is harmless for the mean of squares but not for the variance, so VarGrad
    passes ``abs=False``.
    """
    noisy = dict(samples=samples, seed=NOISE_SEED)
    recipes = {"fullgrad": (METHODS["fullgrad"], {}),
               "input_gradient": (METHODS["saliency"], {}),
               "smoothgrad_sq": (METHODS["smoothgrad"], dict(kind="smoothgrad_sq", **noisy)),
               "vargrad": (METHODS["smoothgrad"], dict(kind="vargrad", options={"abs": False}, **noisy))}
    out = {}
    for name in methods:
        method, options = recipes[name]
        out[name] = torch.cat([method(model, images[s:s + batch_size], labels[s:s + batch_size], **options)
                               for s in range(0, len(labels), batch_size)])
    return out


def compare(acc_method: torch.Tensor, acc_other: torch.Tensor, level: float = 0.95) -> dict:
    """Paired comparison of two accuracy vectors ``(repeats,)`` (seeds or images) at ONE fraction:
    the mean of ``other − method`` per repeat, its Student-t interval, and the verdict: ``"lower"``
    (the method's accuracy is lower: its ranking removes more evidence), ``"higher"`` or
    ``"no different"`` (the interval contains 0; with few repeats weak evidence of no difference)."""
    from scipy.stats import t

    diff = (acc_other - acc_method).double().flatten()
    mean = diff.mean().item()
    half = 0.0 if len(diff) < 2 else float(t.ppf(0.5 + level / 2, len(diff) - 1)) * diff.std().item() / math.sqrt(len(diff))
    verdict = "lower" if mean - half > 0 else "higher" if mean + half < 0 else "no different"
    return {"difference": mean, "half_width": half, "verdict": verdict}


def overall(per_fraction) -> str:
    """One word for verdicts at several fractions (each ``compare``'s dict or its verdict): ``"lower"``
    (lower at some fraction, higher at none), ``"higher"`` (the reverse), ``"mixed"`` (lower at some,
    higher at others) or ``"no different"`` (at every fraction). Never an average over fractions,
    where a lower accuracy at one fraction and a higher one at another would cancel."""
    words = {v if isinstance(v, str) else v["verdict"] for v in per_fraction}
    if {"lower", "higher"} <= words:
        return "mixed"
    return "lower" if "lower" in words else "higher" if "higher" in words else "no different"


def verdicts(table: torch.Tensor, methods, fractions, level: float = 0.95) -> dict:
    """Every method against ``random``, fraction by fraction, on the fractions that remove pixels.

    ``table``: accuracies ``(methods, fractions, repeats)`` (ROAR: repeats are seeds; ROAD: images).
    Returns ``{method: {"fractions": [...], "per_fraction": [compare(...), ...], "verdict": overall}}``.
    """
    keep = [i for i, f in enumerate(fractions) if f > 0]
    r = list(methods).index("random")
    out = {}
    for i, m in enumerate(methods):
        if m == "random":
            continue
        per = [compare(table[i, j], table[r, j], level) for j in keep]
        out[m] = {"fractions": [float(fractions[j]) for j in keep], "per_fraction": per, "verdict": overall(per)}
    return out


def rank_consistency(morf: torch.Tensor, lerf: torch.Tensor) -> float:
    """Spearman correlation between the methods' order under MoRF and under LeRF (Rong et al.'s
    consistency): ``morf``, ``lerf`` (methods, fractions) accuracies or probabilities. A better
    ranking has a LOWER MoRF curve and a HIGHER LeRF curve, so the score is the correlation of
    ``−mean(morf)`` with ``mean(lerf)`` over the fractions: 1 when the two orders agree."""
    from scipy.stats import spearmanr

    return float(spearmanr((-morf.double().mean(1)).tolist(), lerf.double().mean(1).tolist())[0])


def run(scale_name: str = "reduced", verbose: bool = True, threads: int = 1) -> dict:
    """The whole experiment at ``SCALES[scale_name]``; returns the dict the results file holds.

    Runs with ``threads`` torch CPU threads (restored afterwards): on a shared, busy machine one
    thread is several times faster for these small models than two that fight for the cores.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        results = _run(scale_name, verbose)
    finally:
        torch.set_num_threads(before)
    results["threads"] = threads
    return results


def _run(scale_name: str, verbose: bool) -> dict:
    from ..models import load

    scale = SCALES[scale_name]
    seconds = {}
    start = time.perf_counter()
    model = load(MODEL)
    xtr, ytr, xte, yte = lab_data(scale)
    seconds["data"] = time.perf_counter() - start
    t0 = time.perf_counter()
    n = scale["road_images"]
    roar_maps = explain(model, torch.cat([xtr, xte]), torch.cat([ytr, yte]), scale["samples"],
                        scale["roar_methods"])
    road_maps = {m: roar_maps[m][len(ytr):len(ytr) + n] if m in roar_maps else
                 explain(model, xte[:n], yte[:n], scale["samples"], [m])[m] for m in scale["road_methods"]}
    seconds["attributions"] = time.perf_counter() - t0
    if verbose:
        print(f"attributions: {seconds['attributions']:.0f} s", flush=True)
    pairs = {name: (a[:len(ytr)], a[len(ytr):]) for name, a in roar_maps.items()}
    result = roar(lambda: tiny_cnn(5, 3, scale["width"]), xtr, ytr, xte, yte, pairs, scale["fractions"],
                  scale["seeds"], scale["epochs"], batch_size=scale["batch_size"], threads=1)
    seconds["roar"] = result.seconds
    if verbose:
        print(f"ROAR: {result.trainings} trainings, {result.seconds:.0f} s", flush=True)
    t0 = time.perf_counter()
    road_methods = list(scale["road_methods"]) + ["random"]
    correct, probability = {"most": [], "least": []}, {"most": [], "least": []}
    orders = tuple(scale.get("road_orders", ("most", "least")))  # MoRF and LeRF by default
    for order in orders:  # the random ranking is the same for both
        for name in road_methods:
            if name == "random" and order == "least":  # the same random removal as for MoRF
                correct[order].append(correct["most"][-1])
                probability[order].append(probability["most"][-1])
                continue
            a = road_maps[name] if name != "random" else torch.ones_like(xte[:n, :1])
            out = road(model, xte[:n], yte[:n], a, scale["fractions"],
                       order="random" if name == "random" else order, seed=ROAD_SEED)
            correct[order].append(out["correct"].double())
            probability[order].append(out["probability"].double())
    seconds["road"] = time.perf_counter() - t0
    correct = {k: torch.stack(v) for k, v in correct.items() if v}  # (methods, fractions, images)
    probability = {k: torch.stack(v) for k, v in probability.items() if v}
    if verbose:
        print(f"ROAD: {seconds['road']:.0f} s", flush=True)
    attribution_passes = len(xtr) + len(xte)
    per_image = {"fullgrad": 1, "input_gradient": 1, "smoothgrad_sq": scale["samples"],
                 "vargrad": scale["samples"], "random": 0}
    removing = sum(1 for f in scale["fractions"] if f > 0)
    return {
        "scale": scale_name, "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in scale.items()},
        "model": MODEL, "data_seeds": {"train": TRAIN_SEED, "test": TEST_SEED},
        "seeds": {"data": {"train": TRAIN_SEED, "test": TEST_SEED},
                  "roar_training": list(scale["seeds"]),
                  "roar_random_ranking": "the training seed s (training set), s + 1000003 (test set)",
                  "smoothgrad_noise": NOISE_SEED,
                  "road": f"{ROAD_SEED} (random ranking); {ROAD_SEED} + fraction index (imputation noise)",
                  "course_model": f"{MODEL}, as shipped (not retrained)"},
        "roar": result.to_dict(),
        "road": {"methods": road_methods, "fractions": list(scale["fractions"]), "images": n,
                 "accuracy": correct["most"].mean(-1).tolist(),
                 "probability": probability["most"].mean(-1).tolist(),
                 "probability_se": (probability["most"].std(-1) / math.sqrt(n)).tolist(),
                 **({} if "least" not in correct else {
                     "lerf_accuracy": correct["least"].mean(-1).tolist(),
                     "lerf_probability": probability["least"].mean(-1).tolist(),
                     "lerf_probability_se": (probability["least"].std(-1) / math.sqrt(n)).tolist(),
                     "rank_consistency": {
                         "probability": rank_consistency(probability["most"].mean(-1),
                                                         probability["least"].mean(-1)),
                         "accuracy": rank_consistency(correct["most"].mean(-1), correct["least"].mean(-1))}})},
        "verdicts": {"roar": verdicts(result.accuracy, result.methods, result.fractions),
                     "road": verdicts(correct["most"], road_methods, scale["fractions"])},
        "costs": {"attribution_passes_per_image": per_image,
                  "roar_attribution_images": attribution_passes, "road_attribution_images": n,
                  "roar_trainings": result.trainings,
                  "roar_training_passes": result.trainings * scale["epochs"] * len(ytr),
                  "roar_trainings_per_method": removing * len(scale["seeds"]),
                  "road_trainings": 0, "road_orders": len(orders),
                  "road_forward_passes_per_method": len(orders) * len(scale["fractions"]) * n,
                  "road_solves_per_method": len(orders) * removing * n},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }


def load_results(path: Path = RESULTS) -> dict:
    """The shipped full-scale results (written by ``--full``), with ``roar`` as a :class:`RoarResult`."""
    data = json.loads(Path(path).read_text())
    data["roar_result"] = RoarResult.from_dict(data["roar"])
    return data


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Lab 15: ROAR and ROAD on the shapes.")
    parser.add_argument("--full", action="store_true", help="the full scale; writes the results file")
    parser.add_argument("--out", type=Path, default=None, help=f"where to write (--full: {RESULTS})")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = run("full" if args.full else "reduced")
    import xai_course

    results.update({
        "command": "python -m xai_course.evaluation.roar_lab" + (" --full" if args.full else ""),
        "torch": torch.__version__, "xai_course": getattr(xai_course, "__version__", "unknown"),
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, torch threads {results['threads']}",
        "total_seconds": round(time.perf_counter() - start, 1),
    })
    out = args.out or (RESULTS if args.full else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {out}")
    for kind in ("roar", "road"):
        for m, v in results["verdicts"][kind].items():
            cells = ", ".join(f"{f:.0%} {c['difference']:+.3f} ± {c['half_width']:.3f}"
                              for f, c in zip(v["fractions"], v["per_fraction"]))
            print(f"{kind.upper()} {m}: {v['verdict']} (random − method: {cells})")
    if "rank_consistency" in results["road"]:
        print("ROAD MoRF/LeRF rank consistency (Spearman):", results["road"]["rank_consistency"])
    return results


if __name__ == "__main__":
    main()
