"""LIME against Captum Lime at three perturbations_per_eval and the forward floor (2 images, 200
samples, 16 grid segments): python benchmarks/lime_vs_captum.py"""
import statistics, time, warnings, sys, torch
warnings.filterwarnings("ignore")
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import run
from xai_course import models
from xai_course.attribution import lime
from captum.attr import Lime
torch.set_num_threads(2)
net = models.load("shapes_cnn"); x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)); t = torch.tensor([0, 1])
seg = run._grid(x); S = run.LIME_SAMPLES
def ours(): lime(net, x, t, segments=seg, samples=S, seed=0)
def captum(ppe):
    def f():
        for i in range(2):
            Lime(net).attribute(x[i:i+1], target=int(t[i]), n_samples=S, feature_mask=seg[i][None, None].expand(1, 3, 64, 64), perturbations_per_eval=ppe)
    return f
def forward_floor():
    with torch.no_grad(): net(x.repeat(S, 1, 1, 1))
fs = [ours, captum(16), captum(64), captum(200), forward_floor]
times = [[] for _ in fs]
for f in fs: f()
for _ in range(3):
    for i, f in enumerate(fs):
        s = time.perf_counter(); f(); times[i].append(time.perf_counter() - s)
m = [statistics.median(v) for v in times]
print(f"lime, shapes_cnn, 2 images x {S} samples, 16 grid segments, median of 3 interleaved")
for name, v in zip(["ours", "captum ppe=16", "captum ppe=64", "captum ppe=200", "forward floor"], m):
    print(f"  {name:16s} {1e3*v:9.1f} ms")
best = min(m[1:4])
print(f"  ours / captum best = {m[0]/best:.3f}; ours / forward floor = {m[0]/m[4]:.3f}")
