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
import itertools
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
from xai_course.attribution._core import fast_layout  # noqa: E402
from xai_course.attribution.masking import cpu_workers, default_batch_size, parallel_map  # noqa: E402

warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")


@dataclass
class Row:
    method: str
    reference: str
    ours: Callable  # (model, x, target) -> tensor
    theirs: Callable  # (model, x, target) -> tensor
    points: int = 1  # model evaluations per input: the floor is one batched pass over N * points inputs
    forward_only: bool = False  # perturbation methods: the floor is forward passes only
    # the method gives CPU convolutions channels-last images (_core.fast_layout): so does its floor;
    # IG, DeepLIFT and DeepSHAP keep the default layout (and so their floor), see RESULTS.md
    fast: bool = True


def _captum(cls, **kwargs):
    def run(model, x, target):
        import captum.attr

        return getattr(captum.attr, cls)(model).attribute(x, target=target, **kwargs)

    return run


def _layer(model):
    """The layer Grad-CAM looks at: the last convolutional block."""
    return "layer4" if hasattr(model, "layer4") else "features.8"


def _baselines(x, k=4):
    return torch.rand((k, *x.shape[1:]), generator=torch.Generator().manual_seed(1))


_TWINS = {}


def _twin(model, x):
    """Captum's DeepLift needs each ReLU module used once and no ReLU feeding a MaxPool directly; the twin
    computes the same function with that structure (see tests/reference_twins.py). Built once per model."""
    if id(model) not in _TWINS:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from reference_twins import captum_twin

        _TWINS[id(model)] = captum_twin(model, x)
    return _TWINS[id(model)]


def _captum_on_twin(cls, baselines=None, **kwargs):
    def run(model, x, target):
        import captum.attr

        b = torch.zeros_like(x) if baselines is None else baselines(x)
        return getattr(captum.attr, cls)(_twin(model, x)).attribute(x, target=target, baselines=b, **kwargs)

    return run


def _captum_layer(cls, **kwargs):
    def run(model, x, target):
        import captum.attr

        return getattr(captum.attr, cls)(model, model.get_submodule(_layer(model))).attribute(x, target=target, **kwargs)

    return run


def _captum_smoothgrad(model, x, target):
    import captum.attr

    return captum.attr.NoiseTunnel(captum.attr.Saliency(model)).attribute(
        x, target=target, nt_type="smoothgrad", nt_samples=SAMPLES, stdevs=0.15)


def _gradcam_fullgrad(model, x, target):
    import contextlib
    import io

    from pytorch_grad_cam import FullGrad
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with contextlib.redirect_stdout(io.StringIO()):   # it prints that FullGrad ignores target_layers
        cam = FullGrad(model=model, target_layers=[])
    with cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(k)) for k in target])


def _zennit(composite):
    """zennit's composite with its canonizers (ResNet for torchvision ResNets, else BatchNorm merging)."""

    def run(model, x, target):
        from zennit import composites
        from zennit.attribution import Gradient
        from zennit.canonizers import SequentialMergeBatchNorm
        from zennit.torchvision import ResNetCanonizer

        canonizers = [ResNetCanonizer() if hasattr(model, "layer4") else SequentialMergeBatchNorm()]
        kwargs = {"low": 0.0, "high": 1.0} if composite == "EpsilonGammaBox" else {}
        with Gradient(model=model, composite=getattr(composites, composite)(canonizers=canonizers, **kwargs)) as g:
            return g(x, attr_output=lambda out: out * torch.nn.functional.one_hot(target, out.shape[1]))[1]

    return run


def _segments(x):
    from xai_course.attribution.masking import superpixels

    return superpixels(x, "grid", cells=4)    # 16 squares: Captum needs the same count in every image


def _captum_occlusion(ppe):
    def run(model, x, target):
        import captum.attr

        w, s = _occlusion_window(x)
        return captum.attr.Occlusion(model).attribute(x, target=target, sliding_window_shapes=(3, w, w),
                                                      strides=(1, s, s), perturbations_per_eval=ppe)

    return run


# (our composite, zennit's class, the row's short name)
LRP_COMPOSITES = [("epsilon_plus", "EpsilonPlus", "lrp eps_plus"),
                  ("epsilon_gamma_box", "EpsilonGammaBox", "lrp eps_gamma_box"),
                  ("epsilon_alpha2_beta1", "EpsilonAlpha2Beta1", "lrp eps_a2_b1"),
                  ("epsilon_plus_flat", "EpsilonPlusFlat", "lrp eps_plus_flat")]


def _occlusion_window(x):
    """Window and stride of the occlusion rows: 8 and 4 on 64x64 (225 positions), 32 and 16 on 224x224."""
    return (8, 4) if x.shape[-1] <= 64 else (32, 16)


def _occlusion_positions(x):
    import math

    w, s = _occlusion_window(x)
    return (math.ceil((x.shape[-1] - w) / s) + 1) ** 2 + 1


def _captum_kernel_shap(ppe):
    def run(model, x, target):
        import captum.attr

        return captum.attr.KernelShap(model).attribute(x, target=target, feature_mask=_segments(x)[:, None],
                                                       n_samples=KERNEL_SAMPLES, perturbations_per_eval=ppe)

    return run


STEPS, SAMPLES, KERNEL_SAMPLES = 50, 10, 200
PERTURBATION_ROWS = [
    Row("occlusion", f"captum Occlusion ppe={ppe}",
        lambda m, x, t: attribution.occlusion(m, x, t, *_occlusion_window(x)), _captum_occlusion(ppe),
        points=0, forward_only=True) for ppe in (1, 2, 4, 16, 64)] + [
    Row("kernel_shap", f"captum KernelShap ppe={ppe}",
        lambda m, x, t: attribution.kernel_shap(m, x, t, _segments(x), samples=KERNEL_SAMPLES, seed=0),
        _captum_kernel_shap(ppe), points=KERNEL_SAMPLES, forward_only=True) for ppe in (16, 32, 64, 128, 200)]


def _fixed_attributions(x):
    """XRAI rows: the same attributions for ours and PAIR's (region selection is what they compare)."""
    return torch.randn(x.shape, generator=torch.Generator().manual_seed(0))


def _pair_xrai(model, x, target):
    """PAIR's XRAI (its own Felzenszwalb segments, algorithm "full") given the attributions, per image."""
    import numpy as np
    from saliency.core import XRAI

    a = _fixed_attributions(x).permute(0, 2, 3, 1).numpy()
    return [XRAI().GetMask(np.ascontiguousarray(image), None, base_attribution=a[i])
            for i, image in enumerate(x.permute(0, 2, 3, 1).numpy())]


LIME_SAMPLES = 200


def _grid(x):
    return attribution.superpixels(x, "grid", cells=4)        # 16 segments, the same for both


def _captum_lime(model, x, target):
    """Captum's Lime with its defaults (Lasso, kernel on the input space), one image at a time (its
    API), all perturbations in one batch (its fastest perturbations_per_eval here)."""
    from captum.attr import Lime

    segments = _grid(x)
    return [Lime(model).attribute(x[i:i + 1], target=int(target[i]), n_samples=LIME_SAMPLES,
                                  feature_mask=segments[i][None, None].expand(1, *x.shape[1:]),
                                  perturbations_per_eval=LIME_SAMPLES) for i in range(len(x))]



def _plain_gradient_ascent(model, x, target, steps=None, lr=0.1, l2=0.01):
    """The floor of activation maximisation: the same objective, fixed step, one forward and backward a step."""
    steps = AM_STEPS if steps is None else steps
    v = x.clone(memory_format=fast_layout(x))  # the same layout as the course's AM
    for _ in range(steps):
        v.requires_grad_(True)
        with torch.enable_grad():
            J = torch.log_softmax(model(v), 1).gather(1, target[:, None]).sum() - l2 * v.pow(2).sum()
            gradient = torch.autograd.grad(J, v)[0]
        v = (v + lr * gradient).detach()
    return v


AM_STEPS = 10
ROWS = [
    Row("saliency", "captum Saliency", lambda m, x, t: attribution.saliency(m, x, t), _captum("Saliency", abs=True)),
    Row("input_x_gradient", "captum InputXGradient", lambda m, x, t: attribution.input_x_gradient(m, x, t),
        _captum("InputXGradient")),
    Row("integrated_gradients", "captum IntegratedGradients",
        lambda m, x, t: attribution.integrated_gradients(m, x, t, steps=STEPS, method="gausslegendre"),
        _captum("IntegratedGradients", n_steps=STEPS, method="gausslegendre"), points=STEPS, fast=False),
    Row("smoothgrad", "captum NoiseTunnel", lambda m, x, t: attribution.smoothgrad(m, x, t, samples=SAMPLES, noise=0.15),
        _captum_smoothgrad, points=SAMPLES),
    Row("deeplift", "captum DeepLift", lambda m, x, t: attribution.deeplift(m, x, t), _captum_on_twin("DeepLift"),
        points=2, fast=False),
    Row("deepshap", "captum DeepLiftShap", lambda m, x, t: attribution.deepshap(m, x, t, _baselines(x)),
        _captum_on_twin("DeepLiftShap", baselines=_baselines), points=8, fast=False),
    Row("gradient_shap", "captum GradientShap",
        lambda m, x, t: attribution.gradient_shap(m, x, t, _baselines(x), samples=5),
        lambda m, x, t: __import__("captum.attr").attr.GradientShap(m).attribute(
            x, target=t, baselines=_baselines(x), n_samples=5), points=5),
    Row("guided_backprop", "captum GuidedBackprop", lambda m, x, t: attribution.guided_backprop(m, x, t),
        _captum("GuidedBackprop")),
    Row("grad_cam", "captum LayerGradCam", lambda m, x, t: attribution.grad_cam(m, x, t, _layer(m), upsample=False),
        _captum_layer("LayerGradCam", relu_attributions=True), fast=False),
    Row("guided_grad_cam", "captum GuidedGradCam", lambda m, x, t: attribution.guided_grad_cam(m, x, t, _layer(m)),
        _captum_layer("GuidedGradCam", interpolate_mode="bilinear"), points=2),
    Row("xrai", "saliency (PAIR) XRAI",
        lambda m, x, t: attribution.xrai(m, x, t, attributions=_fixed_attributions(x)), _pair_xrai),
    Row("lime", "captum Lime", lambda m, x, t: attribution.lime(m, x, t, segments=_grid(x), samples=LIME_SAMPLES,
                                                                seed=0), _captum_lime, points=LIME_SAMPLES,
        forward_only=True),
    Row("fullgrad", "pytorch-grad-cam FullGrad", lambda m, x, t: attribution.fullgrad(m, x, t), _gradcam_fullgrad),
    Row("deconvnet", "captum Deconvolution", lambda m, x, t: attribution.deconvnet(m, x, t), _captum("Deconvolution")),
    # not an attribution: the reference is plain gradient ascent on the same objective for the same steps
    Row("activation_maximization", "plain gradient ascent",
        lambda m, x, t: attribution.activation_maximization(m, t, tuple(x.shape[1:]), steps=AM_STEPS, l2=0.01,
                                                            start=x),
        _plain_gradient_ascent, points=AM_STEPS),
] + [Row(name, f"zennit {theirs}", lambda m, x, t, c=ours: attribution.lrp(m, x, t, composite=c), _zennit(theirs))
     for ours, theirs, name in LRP_COMPOSITES] + PERTURBATION_ROWS


def floor(model, x, target, points, forward_only=False, fast=True):
    """One batched forward and backward over all points: the cost no gradient method can beat.
    ``forward_only``: forward passes only, in the engine's batches (perturbation methods; ``points=0``:
    the occlusion positions): the cost of evaluating the model as a black box. Occlusion goes below it
    (ours/floor under 1): its engine recomputes only what each window reaches (``incremental``). Both in the layout the method uses (``fast``: ``_core.fast_layout``,
    channels-last images on CPU; else the default), so the floor is what the same layout allows."""
    points = points or _occlusion_positions(x)
    layout = fast_layout(x) if fast else torch.contiguous_format  # the method's own layout
    if forward_only:
        xs = x.repeat(points, *[1] * (x.ndim - 1))
        def forward(part):
            with torch.no_grad():
                model(part.contiguous(memory_format=layout))

        for chunk in xs.split(default_batch_size(x)):  # the engine's batches, shared between its workers
            parallel_map(forward, [part for part in chunk.tensor_split(cpu_workers(x)) if len(part)])
        return
    xs = x.repeat(points, *[1] * (x.ndim - 1)).contiguous(memory_format=layout).requires_grad_(True)
    t = target.repeat(points)
    with torch.enable_grad():
        torch.autograd.grad(model(xs).gather(1, t[:, None]).sum(), xs)


def interleaved(k, repeats):
    """The indices 0..k-1, ``repeats`` rounds, interleaved so that drifts in machine load hit all alike,
    in every order in turn: a call right after a large one (the floor) runs slower, so each function must
    follow each other one equally often. (A rotation, 0 1 2 / 1 2 0 / 2 0 1, does not: with three
    functions the first followed the third in 2 rounds of 3, the second in 1.)"""
    orders = list(itertools.permutations(range(k)))
    for r in range(repeats):
        yield from orders[r % len(orders)]


def median_times(functions, repeats):
    """The median time of each function, called in turn (:func:`interleaved`)."""
    times = [[] for _ in functions]
    for i in interleaved(len(functions), repeats):
        start = time.perf_counter()
        functions[i]()
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
    parser.add_argument("--methods", nargs="*", help="only these rows (default: all)")
    parser.add_argument("--models", nargs="*", help="only these models (default: all)")
    parser.add_argument("--memory", action="store_true", help="only the IG memory table")
    parser.add_argument("--flops", action="store_true",
                        help="instead of times: the floating-point work of each row (convolutions, matrix products) "
                             "against its floor's, counted op by op")
    parser.add_argument("--batch", type=int, default=8, help="images per call (default 8)")
    parser.add_argument("--repeats", type=int, help="repeats per row (default: 5 with --quick, else 21 or more)")
    args = parser.parse_args(argv)
    if args.memory:
        return memory_table()
    if args.flops:
        return flops_table(args)
    repeats = 5 if args.quick else 21
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"median of {args.repeats or repeats} or more")
    header = f"{'method':<20} {'reference':<24} {'model':<11} {'ours ms':>9} {'ref ms':>9} {'ours/ref':>9} {'ours/floor':>11}"
    print(header)
    print("-" * len(header))
    for model_name, (model, x, classes) in bench_models().items():
        if args.models and model_name not in args.models:
            continue
        x = x[:args.batch]
        target = torch.arange(len(x)) % classes
        for row in ROWS:
            if args.methods and row.method not in args.methods:
                continue
            start = time.perf_counter()
            for f in (row.ours, row.theirs):  # warm up
                f(model, x, target)
            # fast rows get more repeats (about 4 s of ours + theirs), so their medians are as steady;
            # slow rows (IG on resnet18 takes ~15 s a call) get 5
            warm = time.perf_counter() - start
            n = repeats if args.quick else max(5 if warm > 2 else repeats, min(301, int(4.0 / warm)))
            n = args.repeats or n
            ours, theirs, base = median_times(
                [lambda: row.ours(model, x, target), lambda: row.theirs(model, x, target),
                 lambda: floor(model, x, target, row.points, row.forward_only, row.fast)], n)
            print(f"{row.method:<20} {row.reference:<24} {model_name:<11} {1e3 * ours:>9.2f} {1e3 * theirs:>9.2f} "
                  f"{ours / theirs:>9.3f} {ours / base:>11.3f}", flush=True)


MEMORY_PROBE = """
import resource, sys, torch, torchvision
from xai_course.attribution import integrated_gradients
torch.manual_seed(0)
model = torchvision.models.resnet18(weights=None).eval()
x, batch_size = torch.rand(8, 3, 224, 224), (None if sys.argv[1] == "None" else int(sys.argv[1]))
integrated_gradients(model, x[:1], 0, steps=2)                     # warm up: allocator and kernels
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
integrated_gradients(model, x, torch.arange(8), steps=50, batch_size=batch_size)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def count_flops(function) -> int:
    """The floating-point operations of the convolutions and matrix products ``function`` runs (forward
    and backward), counted as torch dispatches them (torch.utils.flop_counter's formulas)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                Counter.total += formula(*args, out_val=out, **(kwargs or {}))
            return out

    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # one thread: the masked evaluation then runs no workers (a mode is per thread)
    try:
        with Counter():
            function()
    finally:
        torch.set_num_threads(threads)
    return Counter.total


def flops_table(args):
    """Each selected row's work against its floor's: what no implementation of the method can go below."""
    print(f"batch {args.batch}; floating-point work of the convolutions and matrix products, ours / floor")
    print(f"{'method':<20} {'model':<11} {'floor GFLOP':>12} {'ours/floor':>11}")
    for model_name, (model, x, classes) in bench_models().items():
        if args.models and model_name not in args.models:
            continue
        x = x[:args.batch]
        target = torch.arange(len(x)) % classes
        done = set()
        for row in ROWS:
            if args.methods and row.method not in args.methods or row.method in done:
                continue   # (a method with several reference rows: counted once)
            done.add(row.method)
            base = count_flops(lambda: floor(model, x, target, row.points, row.forward_only, row.fast))
            ours = count_flops(lambda: row.ours(model, x, target))
            print(f"{row.method:<20} {model_name:<11} {base / 1e9:>12.2f} {ours / base:>11.2f}", flush=True)


def memory_table():
    """Peak memory of IG (resnet18, 8 images, 50 steps) against batch_size, each in a fresh process."""
    import subprocess

    print("\nIG memory on resnet18, 8 images x 50 steps = 400 path points: growth of peak RSS during the call")
    for batch_size in (None, 200, 40, 8):
        out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(batch_size)], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parents[1])
        print(f"  batch_size={str(batch_size):>4}: {float(out.stdout.split()[-1]):8.0f} MB", flush=True)


if __name__ == "__main__":
    main()
