"""Speed of each method against its reference library, measured in the same process.

    python benchmarks/run.py            # the full table (course CNN and resnet18, batch 8)
    python benchmarks/run.py --quick    # fewer repeats

For each method and model: the median time of ours and of the reference over interleaved repeats,
their ratio (ours / reference; this machine is noisy, so compare ratios, not seconds), and the ratio
to the floor: one batched forward and backward pass over every point the method evaluates.
A method is added by one row in ROWS.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xai_course import attribution, models  # noqa: E402

warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")


@dataclass
class Row:
    method: str
    reference: str
    ours: Callable  # (model, x, target) -> tensor
    theirs: Callable  # (model, x, target) -> tensor
    points: int = 1  # model evaluations per input: the floor is one batched pass over N * points inputs


def _captum(cls, **kwargs):
    def run(model, x, target):
        import captum.attr

        return getattr(captum.attr, cls)(model).attribute(x, target=target, **kwargs)

    return run


ROWS = [
    Row("saliency", "captum Saliency", lambda m, x, t: attribution.saliency(m, x, t), _captum("Saliency", abs=True)),
    Row("input_x_gradient", "captum InputXGradient", lambda m, x, t: attribution.input_x_gradient(m, x, t),
        _captum("InputXGradient")),
]


def floor(model, x, target, points):
    """One batched forward and backward over all points: the cost no gradient method can beat."""
    xs = x.repeat(points, *[1] * (x.ndim - 1)).requires_grad_(True)
    t = target.repeat(points)
    with torch.enable_grad():
        torch.autograd.grad(model(xs).gather(1, t[:, None]).sum(), xs)


def median_times(functions, repeats):
    times = [[] for _ in functions]
    for _ in range(repeats):  # interleaved, so drifts in machine load hit all alike
        for i, f in enumerate(functions):
            start = time.perf_counter()
            f()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def bench_models():
    import torchvision

    torch.manual_seed(0)
    resnet18 = torchvision.models.resnet18(weights=None).eval()
    return {"shapes_cnn": (models.load("shapes_cnn"), torch.rand(8, 3, 64, 64), 5),
            "resnet18": (resnet18, torch.rand(8, 3, 224, 224), 1000)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 21
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 8, median of {repeats} or more")
    header = f"{'method':<20} {'reference':<24} {'model':<11} {'ours ms':>9} {'ref ms':>9} {'ours/ref':>9} {'ours/floor':>11}"
    print(header)
    print("-" * len(header))
    for model_name, (model, x, classes) in bench_models().items():
        target = torch.arange(len(x)) % classes
        for row in ROWS:
            start = time.perf_counter()
            for f in (row.ours, row.theirs):  # warm up
                f(model, x, target)
            # fast rows get more repeats (about 2 s of ours + theirs), so their medians are as steady
            n = repeats if args.quick else max(repeats, min(301, int(4.0 / (time.perf_counter() - start))))
            ours, theirs, base = median_times(
                [lambda: row.ours(model, x, target), lambda: row.theirs(model, x, target),
                 lambda: floor(model, x, target, row.points)], n)
            print(f"{row.method:<20} {row.reference:<24} {model_name:<11} {1e3 * ours:>9.2f} {1e3 * theirs:>9.2f} "
                  f"{ours / theirs:>9.3f} {ours / base:>11.3f}", flush=True)


if __name__ == "__main__":
    main()
