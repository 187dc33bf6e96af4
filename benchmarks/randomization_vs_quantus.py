"""Model-parameter randomisation (Adebayo et al., 2018) through Quantus 0.6 and through xai_course.evaluation.

    python benchmarks/randomization_vs_quantus.py            # 5 interleaved repeats
    python benchmarks/randomization_vs_quantus.py --quick    # 2

The same work on both sides, in one process: shapes_cnn, the same 8 shapes images and predicted classes,
the same explanation method (the gradient; Quantus through its own ``quantus.explain``, i.e. Captum's
``Saliency``, absolute and summed over channels; ours ``saliency``), the same layers (Quantus takes the
modules with ``reset_parameters``, here the same six Conv2d/Linear layers as ours), top layer first,
cascading and independent, the same similarity (Spearman; SSIM of the maps as images in a second row,
through a small wrapper on Quantus's side: see ``_ssim_2d``). Quantus's settings:
``abs=True, normalise=False`` (a rank correlation does not see the normalisation anyway). Reported: the
median wall-clock time of each over interleaved repeats, the ratio (Quantus / ours), the ratio of the
median CPU times of the process (steadier on a shared machine), and the largest difference between the
per-layer mean scores (the randomised weights differ: Quantus re-seeds the global RNG with the same
seed before every layer, ours draws one seed per layer, so the scores agree only statistically; the
exact parity on equal weights is tests/test_randomization.py). ``floor``: the explanations alone, as bare
passes (``run.py``'s floor: one forward and backward of the images, once for the trained model and once per
layer, without randomising, copying or comparing), measured in the same rounds; ``bound`` = Quantus / floor
is the largest ratio any implementation computing ours' explanations could reach.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xai_course import models  # noqa: E402
from xai_course.data import shapes  # noqa: E402
from xai_course.evaluation import model_randomization_test  # noqa: E402
from xai_course.evaluation.randomization import parameter_layers  # noqa: E402

from run import floor, interleaved  # noqa: E402  (benchmarks/run.py, in this script's folder)

warnings.filterwarnings("ignore")
QUANTUS_ORDER = {"cascading": "top_down", "independent": "independent"}


def _ssim_2d(a, b, batched=True, **kwargs):
    """SSIM of each pair of flattened 64x64 maps as images (Gaussian window, joint data range).

    Quantus 0.6's own ``similarity_func.ssim`` cannot serve here: MPRT flattens the maps to (N, H*W)
    before calling it (so it would compare 1-D signals), and its batched result is a list, on which
    MPRT calls ``.tolist()`` and fails. This is the similarity ours computes, in Quantus's loop.
    """
    from skimage.metrics import structural_similarity

    out = []
    for p, q in zip(a, b):
        side = int(round(len(p) ** 0.5))
        p, q = p.reshape(side, side).astype(np.float64), q.reshape(side, side).astype(np.float64)
        both = np.concatenate([p.ravel(), q.ravel()])
        out.append(structural_similarity(p, q, data_range=float(both.max() - both.min()), gaussian_weights=True,
                                         sigma=1.5, use_sample_covariance=False))
    return np.array(out)


def quantus_run(model, x, y, order, measure):
    import quantus

    similarity = {"spearman": quantus.similarity_func.correlation_spearman, "ssim": _ssim_2d}[measure]
    metric = quantus.MPRT(similarity_func=similarity, layer_order=QUANTUS_ORDER[order], abs=True,
                          normalise=False, disable_warnings=True, seed=0)
    scores = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None,
                    explain_func=quantus.explain, explain_func_kwargs={"method": "Saliency"}, batch_size=len(x))
    return {k: np.mean(v) for k, v in scores.items() if k != "original"}


def ours_run(model, x, y, order, measure):
    options = {"abs": True}
    if measure == "ssim":  # as Quantus: SSIM of the maps as they are, data range max - min of the pair
        from xai_course.evaluation import pixel_map, ssim
        from xai_course.evaluation.randomization import randomized_models
        from xai_course.attribution import saliency

        a = saliency(model, x, y)
        out = {}
        for name, m in randomized_models(model, order, seed=0):
            out[name] = ssim(a, saliency(m, x, y), absolute=False, normalise=False).mean().item()
        return out
    r = model_randomization_test(model, x, y, "saliency", order=order, seed=0, measures=[measure],
                                 options=options)
    return dict(zip(r["layers"], r["scores"][measure].mean(1).tolist()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    torch.set_num_threads(2)
    model = models.load("shapes_cnn")
    x = shapes(args.images, seed=16_016).images
    with torch.no_grad():
        y = model(x).argmax(1)
    passes = 1 + len(parameter_layers(model))      # the trained model's explanation and one per layer

    def floor_run(model, x, y, order, measure):
        for _ in range(passes):
            floor(model, x, y, 1)

    rows = []
    for measure in ("spearman", "ssim"):
        for order in ("cascading", "independent"):
            times = {"quantus": [], "ours": [], "floor": []}
            cpu = {"quantus": [], "ours": [], "floor": []}
            sides = (("quantus", quantus_run), ("ours", ours_run), ("floor", floor_run))
            for i in interleaved(len(sides), repeats):
                side, run = sides[i]
                start, start_cpu = time.perf_counter(), time.process_time()
                result = run(model, x, y, order, measure)
                times[side].append(time.perf_counter() - start)
                cpu[side].append(time.process_time() - start_cpu)
                if side == "quantus":
                    theirs = result
                elif side == "ours":
                    ours = result
            assert set(ours) == set(theirs), (sorted(ours), sorted(theirs))
            gap = max(abs(ours[k] - theirs[k]) for k in ours)
            q, o = statistics.median(times["quantus"]), statistics.median(times["ours"])
            qc, oc = statistics.median(cpu["quantus"]), statistics.median(cpu["ours"])
            f = statistics.median(times["floor"])
            rows.append((f"MPRT {order}", measure, 1000 * q, 1000 * o, q / o, qc / oc, 1000 * f, q / f, gap))
    print(f"{'work':17s} {'similarity':10s} {'quantus ms':>10s} {'ours ms':>8s} {'ratio':>6s} "
          f"{'CPU ratio':>9s} {'floor ms':>8s} {'bound':>6s} {'max |mean gap|':>14s}")
    for work, measure, q, o, ratio, cpu_ratio, f, bound, gap in rows:
        print(f"{work:17s} {measure:10s} {q:10.1f} {o:8.1f} {ratio:6.2f} {cpu_ratio:9.2f} {f:8.1f} {bound:6.2f} "
              f"{gap:14.3f}")
    return rows


if __name__ == "__main__":
    main()
