"""Lab 14's evaluation work through Quantus 0.6 and through xai_course.evaluation, side by side in one process.

    python benchmarks/evaluation_vs_quantus.py [--images 8] [--repeats 3] [--default-step]

The same work on ``shapes_cnn`` and a batch of held-out shapes images (maps: |input x gradient| summed over
channels, one channel):

- the PP curve (pixel flipping): the target probability as the most salient pixels go. Quantus flips
  channel values, ``features_in_step=64`` at a time (a divisor of H*W, as it demands; its "black" = each
  image's minimum; it spreads the one-channel map over the 3 channels), so only every third of its 192
  steps ends on whole pixels: the 64-point whole-pixel curve costs it 192 steps. Ours removes whole
  pixels (the image minimum as fill): the same 64 points directly (row 1), or 192 points with Quantus'
  number of model passes (row 2). The curves agree at the whole-pixel points (max |diff| printed); a tiny
  jitter breaks the map's ties so that both sort it the same way;
- the PP metrics of the lab (``pixel_perturbation``: AFOC, KL, PCUO at the 64 points) against Quantus'
  curve (Quantus has no AFOC, KL or PCUO; computing AFOC from its curve costs nothing);
- faithfulness correlation, 100 random subsets per image (Quantus: 224 channel values; ours: 75 pixels,
  225 channel values), target logit, black fill: the same number of model passes.

Ratios of medians of interleaved repeats (the machine is shared: compare ratios, not seconds). The
``floor`` column is the same number of bare forward passes of the unperturbed images (``run.py``'s
forward-only floor: the engine's batches, channels-last, no masking), measured in the same rounds; ``bound``
= Quantus / floor is the largest ratio any implementation making ours' passes could reach.
"""
import argparse
import sys
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")
import quantus  # noqa: E402

from xai_course import data, models  # noqa: E402
from xai_course.attribution import input_x_gradient  # noqa: E402
from xai_course.evaluation import faithfulness_correlation, perturbed_outputs, pixel_perturbation  # noqa: E402
from xai_course.models.train import TEST_SEED  # noqa: E402

from run import floor, median_times  # noqa: E402  (benchmarks/run.py: this script's folder is on sys.path)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--default-step", action="store_true",
                        help="also Quantus' PixelFlipping at its default step (one channel value: slow)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model = models.load("shapes_cnn")
    x = data.shapes(args.images, seed=TEST_SEED).images
    with torch.no_grad():
        y = model(x).argmax(1)
    a = input_x_gradient(model, x, y).sum(1, keepdim=True).abs()
    a = a + 1e-6 * a.max() * torch.rand(a.shape, generator=torch.Generator().manual_seed(0))   # no ties
    xn, yn, an = x.numpy(), y.numpy(), a.numpy()
    minimum = x.amin((1, 2, 3), keepdim=True)
    n = len(x)
    cases = []
    values = 64                                   # Quantus: 64 channel values a step, 192 steps
    steps = 3 * 4096 // values
    metric = quantus.PixelFlipping(features_in_step=values, perturb_baseline="black", normalise=False,
                                   abs=False, disable_warnings=True, display_progressbar=False)
    whole = [values * (i + 1) / 4096 for i in range(steps // 3)]               # 64 whole-pixel points
    every = [values * (i + 1) / (3 * 4096) for i in range(steps)]              # 192 points, as Quantus

    def theirs():
        return np.array(metric(model=model, x_batch=xn, y_batch=yn, a_batch=an, device="cpu",
                               softmax=True))[:, 2::3]          # the whole-pixel points

    def ours_whole():
        return perturbed_outputs(model, x, a, whole, fill=minimum)[torch.arange(n), :, y].numpy()

    def ours_every():
        return perturbed_outputs(model, x, a, every, fill=minimum)[torch.arange(n), :, y].numpy()[:, 2::3]

    def ours_pp():
        return pixel_perturbation(model, x, y, a, whole, fill=minimum)["afoc"].T.numpy()

    with torch.no_grad():
        p0 = model(x).softmax(1)[torch.arange(n), y].numpy()[:, None]

    def afoc(curve):                               # AFOC from Quantus' curve, to compare
        return np.abs(curve - p0) / p0

    same = lambda r: r  # noqa: E731
    cases.append((f"PP curve, {len(whole)} whole-pixel points", (n * len(whole), n * steps), theirs, ours_whole, same))
    cases.append((f"PP curve, {steps} points (same passes)", (n * steps, n * steps), theirs, ours_every, same))
    cases.append(("PP AFOC/KL/PCUO, same 64 points", (n * len(whole) + n, n * steps), theirs, ours_pp, afoc))
    fc = quantus.FaithfulnessCorrelation(nr_runs=100, subset_size=224, perturb_baseline="black", normalise=False,
                                         abs=False, return_aggregate=False, disable_warnings=True,
                                         display_progressbar=False)

    def theirs_fc():
        return np.array(fc(model=model, x_batch=xn, y_batch=yn, a_batch=an, device="cpu", softmax=False))

    def ours_fc():
        return faithfulness_correlation(model, x, y, a, subset_size=75, samples=100, seed=0).numpy()

    cases.append(("faithfulness corr., 100 subsets", (n * 101, n * 101), theirs_fc, ours_fc, same))
    if args.default_step:          # Quantus as it comes: one channel value a step, 12,288 steps an image
        default = quantus.PixelFlipping(perturb_baseline="black", normalise=False, abs=False,
                                        disable_warnings=True, display_progressbar=False)

        def theirs_default():
            return np.array(default(model=model, x_batch=xn, y_batch=yn, a_batch=an, device="cpu",
                                    softmax=True))[:, 3 * values - 1::3 * values]   # the same 64 points

        cases.append(("PP curve, Quantus' default step", (n * len(whole), n * 3 * 4096), theirs_default,
                      ours_whole, same))

    print(f"torch {torch.__version__}, quantus {quantus.__version__}, {torch.get_num_threads()} threads, "
          f"shapes_cnn, {n} images 64x64, median of {args.repeats} interleaved")
    print(f"{'work':38s} {'passes ours/quantus':>19s} {'ours ms':>8s} {'quantus ms':>10s} {'ratio':>6s} "
          f"{'floor ms':>8s} {'bound':>6s} {'max |diff|':>10s}")
    print("-" * 114)
    rows = []
    for name, (p_ours, p_theirs), theirs, ours, compare in cases:
        r_ours, r_theirs = ours(), compare(theirs())              # warm-up, and the results compared

        def bare(points=p_ours // n):            # ours' passes, of the unperturbed images
            floor(model, x, y, points, forward_only=True)

        mo, mt, mf = (1e3 * t for t in median_times([ours, theirs, bare], args.repeats))   # interleaved
        diff = (f"{np.abs(r_ours - r_theirs).max():.1e}" if "faithfulness" not in name else "own subsets")
        rows.append((name, p_ours, p_theirs, mo, mt, mt / mo, mf, mt / mf, diff))
        print(f"{name:38s} {p_ours:>9d}/{p_theirs:<9d} {mo:8.1f} {mt:10.1f} {mt / mo:5.1f}x {mf:8.1f} {mt / mf:5.1f}x "
              f"{diff:>10s}", flush=True)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
