"""Lab 14's evaluation work through Quantus 0.6 and through xai_course.evaluation, side by side in one process.

    python benchmarks/evaluation_vs_quantus.py [--images 8] [--repeats 3]

The same work on ``shapes_cnn`` and a batch of held-out shapes images (maps: |input x gradient| summed over
channels, one channel):

- pixel-flipping curve: the target probability as channel values are removed ``m`` at a time (Quantus:
  ``features_in_step=m``, a divisor of H*W as it demands; its "black" = each image's minimum; it spreads the
  one-channel map over the 3 channels, so every third step ends on whole pixels) and as pixels are removed
  ``m/3`` at a time (ours: ``perturbed_outputs`` with the image minimum as fill, the same number of points
  and model passes); the curves agree at the whole-pixel points (max |diff| printed). A tiny jitter breaks
  the ties of the map, so that both sort it the same way;
- the PP metrics of the lab (``pixel_perturbation``: AFOC, KL, PCUO at the same fractions) against
  Quantus' curve plus the AFOC computed from it (Quantus has no KL/PCUO);
- faithfulness correlation, 100 random subsets per image (Quantus: 224 channel values; ours: 75 pixels,
  225 channel values), target logit, black fill: the same number of model passes.

Ratios of medians of interleaved repeats (the machine is shared: compare ratios, not seconds).
"""
import argparse
import statistics
import sys
import time
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")
import quantus  # noqa: E402

from xai_course import data, models  # noqa: E402
from xai_course.attribution import input_x_gradient  # noqa: E402
from xai_course.evaluation import faithfulness_correlation, perturbed_outputs, pixel_perturbation  # noqa: E402
from xai_course.models.train import TEST_SEED  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
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
    for values in (64, 16):                       # channel values a step: 192 and 768 curve points
        steps = 3 * 4096 // values
        fractions = [values * (i + 1) / (3 * 4096) for i in range(steps)]
        metric = quantus.PixelFlipping(features_in_step=values, perturb_baseline="black", normalise=False,
                                       abs=False, disable_warnings=True, display_progressbar=False)

        def theirs(metric=metric):
            return np.array(metric(model=model, x_batch=xn, y_batch=yn, a_batch=an, device="cpu", softmax=True))

        def ours(fractions=fractions):
            return perturbed_outputs(model, x, a, fractions, fill=minimum)[torch.arange(n), :, y].numpy()

        def theirs_afoc(theirs=theirs):
            curve = theirs()
            with torch.no_grad():
                p0 = model(x).softmax(1)[torch.arange(n), y].numpy()[:, None]
            return np.abs(curve - p0) / p0

        def ours_pp(fractions=fractions):
            return pixel_perturbation(model, x, y, a, fractions, fill=minimum)["afoc"].T.numpy()

        cases.append((f"pixel flipping, {steps} points", n * steps, theirs, ours))
        cases.append((f"PP AFOC/KL/PCUO, {steps} points", n * steps, theirs_afoc, ours_pp))
    fc = quantus.FaithfulnessCorrelation(nr_runs=100, subset_size=224, perturb_baseline="black", normalise=False,
                                         abs=False, return_aggregate=False, disable_warnings=True,
                                         display_progressbar=False)

    def theirs_fc():
        return np.array(fc(model=model, x_batch=xn, y_batch=yn, a_batch=an, device="cpu", softmax=False))

    def ours_fc():
        return faithfulness_correlation(model, x, y, a, subset_size=75, samples=100, seed=0).numpy()

    cases.append(("faithfulness corr., 100 subsets", n * 100, theirs_fc, ours_fc))

    print(f"torch {torch.__version__}, quantus {quantus.__version__}, {torch.get_num_threads()} threads, "
          f"shapes_cnn, {n} images 64x64, median of {args.repeats} interleaved")
    print(f"{'work':34s} {'passes':>7s} {'ours ms':>9s} {'quantus ms':>11s} {'quantus/ours':>13s} {'max |diff|':>11s}")
    print("-" * 90)
    rows = []
    for name, passes, theirs, ours in cases:
        t_ours, t_theirs = [], []
        r_ours, r_theirs = ours(), theirs()              # warm-up, and the results compared
        for _ in range(args.repeats):
            s = time.perf_counter(); ours(); t_ours.append(time.perf_counter() - s)
            s = time.perf_counter(); theirs(); t_theirs.append(time.perf_counter() - s)
        mo, mt = 1e3 * statistics.median(t_ours), 1e3 * statistics.median(t_theirs)
        whole = slice(2, None, 3)                 # the points where Quantus has removed whole pixels
        diff = (f"{np.abs(r_ours[:, whole] - r_theirs[:, whole]).max():.1e}" if "faithfulness" not in name
                else "(own subsets)")
        rows.append((name, passes, mo, mt, mt / mo, diff))
        print(f"{name:34s} {passes:7d} {mo:9.1f} {mt:11.1f} {mt / mo:12.1f}x {diff:>11s}", flush=True)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
