"""Error against exact Shapley values per model call (issue 8): Kernel SHAP against the references.

    python benchmarks/shapley_error.py            # 4 images x 6 seeds, 100/300/1000/3000 calls
    python benchmarks/shapley_error.py --quick    # 2 images x 2 seeds

The course CNN on shapes images with exactly 12 SLIC superpixels (filled with 0 when removed); exact
values by enumerating the 2^12 coalitions. Each method gets a budget of model calls per image (counted
by a forward hook: the "calls" column is the mean actually used); the error is the relative L1 error
||φ̂ - φ||₁ / ||φ||₁, median over images x seeds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xai_course import models  # noqa: E402
from xai_course.attribution.masking import masked_outputs, superpixels  # noqa: E402
from xai_course.attribution.shapley import kernel_shap, shapley_values  # noqa: E402

warnings.filterwarnings("ignore")
M = 12


def problem(images=4):
    """(model, x, target, segments, exact φ (N, M)): shapes images with exactly 12 SLIC superpixels."""
    from xai_course.data import shapes

    model = models.load("shapes_cnn").eval()
    x = shapes(40, seed=123).images
    seg = superpixels(x, "slic", n_segments=14)
    pick = ((seg.flatten(1).max(1).values + 1) == M).nonzero()[:images, 0]
    x, seg = x[pick], seg[pick]
    with torch.no_grad():
        target = model(x).argmax(1)
    exact = per_segment(shapley_values(model, x, target, seg), seg)
    return model, x, target, seg, exact


def per_segment(a, seg):
    """(N, M) float64 from a painted (N, C, H, W) attribution: each segment's value."""
    first = torch.stack([torch.stack([(s.flatten() == k).nonzero()[0, 0] for k in range(M)]) for s in seg])
    return a[:, 0].flatten(1).gather(1, first).double()


def game(model, x, target, seg):
    """v(z) for coalitions z (K, M) in {0, 1}, as a numpy function (the shap library's view)."""
    def f(z):
        masks = torch.from_numpy(np.asarray(z) > 0.5)[None]
        return masked_outputs(model, x, target, masks, seg).double().numpy()[0]

    return f


def ours(model, x, target, seg, budget, seed):
    return per_segment(kernel_shap(model, x, target, seg, samples=budget, seed=seed), seg)[0]


def captum_kernel(model, x, target, seg, budget, seed):
    from captum.attr import KernelShap

    torch.manual_seed(seed)
    a = KernelShap(model).attribute(x, target=target, feature_mask=seg[:, None], n_samples=budget,
                                    perturbations_per_eval=64)
    return per_segment(a, seg)[0]


def captum_sampling(model, x, target, seg, budget, seed):
    from captum.attr import ShapleyValueSampling

    torch.manual_seed(seed)
    a = ShapleyValueSampling(model).attribute(x, target=target, feature_mask=seg[:, None],
                                              n_samples=max(1, (budget - 1) // M), perturbations_per_eval=64)
    return per_segment(a, seg)[0]


def shap_kernel(model, x, target, seg, budget, seed):
    import shap

    np.random.seed(seed)
    explainer = shap.KernelExplainer(game(model, x, target, seg), np.zeros((1, M)))
    values = explainer.shap_values(np.ones((1, M)), nsamples=budget - 2, l1_reg=False, silent=True)
    return torch.from_numpy(np.asarray(values)).reshape(-1)[:M].double()


def shap_permutation(model, x, target, seg, budget, seed):
    import shap

    f = game(model, x, target, seg)
    explainer = shap.explainers.Permutation(f, shap.maskers.Independent(np.zeros((1, M)), max_samples=1),
                                            seed=seed)
    values = explainer(np.ones((1, M)), max_evals=max(budget, 2 * M + 1), silent=True).values[0]
    return torch.from_numpy(values).double()


METHODS = {"ours (kernel_shap)": ours, "captum KernelShap": captum_kernel,
           "captum ShapleyValueSampling": captum_sampling, "shap KernelExplainer": shap_kernel,
           "shap PermutationExplainer": shap_permutation}


def table(images=4, seeds=6, budgets=(100, 300, 1000, 3000), methods=METHODS):
    """{method: {budget: (median relative L1 error, mean calls per image)}}."""
    model, x, target, seg, exact = problem(images)
    calls = []
    handle = model.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    results = {}
    try:
        for name, method in methods.items():
            results[name] = {}
            for budget in budgets:
                errors, used = [], []
                for seed in range(seeds):
                    for n in range(len(x)):
                        calls.clear()
                        est = method(model, x[n:n + 1], target[n:n + 1], seg[n:n + 1], budget, seed)
                        used.append(sum(calls))
                        errors.append(((est - exact[n]).abs().sum() / exact[n].abs().sum()).item())
                results[name][budget] = (statistics.median(errors), statistics.mean(used))
    finally:
        handle.remove()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--methods", nargs="*", help="only these (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    methods = {k: v for k, v in METHODS.items() if not args.methods or k.split()[0] in args.methods
               or k in args.methods}
    images, seeds = (2, 2) if args.quick else (4, 6)
    budgets = (100, 300, 1000, 3000)
    print(f"median relative L1 error against exact Shapley values, {M} superpixels, {images} images x {seeds} seeds")
    print(f"{'method':<28}" + "".join(f"{b:>16}" for b in budgets))
    for name, row in table(images, seeds, budgets, methods).items():
        print(f"{name:<28}" + "".join(f"{e:>9.4f} ({c:>4.0f})" for e, c in row.values()), flush=True)


if __name__ == "__main__":
    main()
