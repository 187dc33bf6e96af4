"""Lab 14's experiment module: a tiny run has the shape the notebook reads, findings() on hand-made
numbers, main() writes the results file, the shipped results file is complete."""
import json

import pytest

from xai_course.attribution import METHODS
from xai_course.evaluation import pp_lab

TINY = dict(n=2, fractions=(0.1, 0.5), steps=2, samples=4, subset=0.05, ig_steps=4, smoothgrad_samples=2, stride=8,
            perturbation_samples=8, cells=2)


@pytest.fixture(scope="module")
def tiny():
    return pp_lab.run(TINY, seed=0, methods=list(pp_lab.REPORT_METHODS))


def test_run_has_every_number_the_notebook_reads(tiny):
    assert tiny["methods"] == list(pp_lab.REPORT_METHODS)
    for name in pp_lab.REPORT_METHODS:
        for fill in pp_lab.FILLS:
            for order in pp_lab.ORDERS:
                for metric in pp_lab.METRICS:
                    s = tiny["pp"][name][fill][order][metric]
                    assert set(s) == {"mean", "sd", "se"} and len(s["mean"]) == 2
                seen = tiny["perturbed"][name][fill][order]
                assert set(seen["argmax"]) == set(tiny["classes"])
                for i in range(2):                                  # shares of the images sum to 1
                    assert abs(sum(v[i] for v in seen["argmax"].values()) - 1) < 1e-9
                assert sum(v["images"] for v in seen["afoc_by_class"].values()) == 2
        for key in ("insertion", "deletion", "faithfulness", "pointing_game", "relevance_mass", "iou"):
            assert set(tiny[key][name]) == {"mean", "sd", "se"}
        assert 0 <= tiny["insertion"][name]["mean"] <= 1 and -1 <= tiny["faithfulness"][name]["mean"] <= 1
    assert set(tiny["findings"]) == {"within_one_sd", "mean_fill_reduces_artifacts", "fullgrad_best_least_salient"}
    json.dumps(tiny)                                                    # JSON-ready


def test_run_is_deterministic_under_a_seed(tiny):
    again = pp_lab.run(TINY, seed=0, methods=["random_attribution"])
    assert again["pp"]["random_attribution"] == tiny["pp"]["random_attribution"]
    assert again["faithfulness"]["random_attribution"] == tiny["faithfulness"]["random_attribution"]


def _results(curves):
    """Hand-made results: curves[method][(fill, order)] = (mean list, sd list)."""
    pp = {}
    for name, by_scheme in curves.items():
        pp[name] = {fill: {order: {m: {"mean": by_scheme[fill, order][0], "sd": by_scheme[fill, order][1],
                                       "se": by_scheme[fill, order][1]} for m in pp_lab.METRICS}
                           for order in pp_lab.ORDERS} for fill in pp_lab.FILLS}
    return {"pp": pp}


def test_findings_by_hand():
    schemes = [(f, o) for f in pp_lab.FILLS for o in pp_lab.ORDERS]
    # FullGrad lowest on least/mean, every method lower with mean than black on least, all gaps within 1 sd
    curves = {}
    for i, name in enumerate(pp_lab.REPORT_METHODS):
        c = {s: ([0.5, 0.5], [1.0, 1.0]) for s in schemes}
        c["black", "least"] = ([0.4 + 0.1 * i] * 2, [1.0, 1.0])
        c["mean", "least"] = ([0.1 * i] * 2, [1.0, 1.0])
        curves[name] = c
    f = pp_lab.findings(_results(curves))
    assert f["within_one_sd"]["share"] == 1.0 and f["within_one_sd"]["holds"]
    assert f["within_one_sd"]["comparisons"] == 6 * 2 * 2 * 3 * 2      # pairs x fills x orders x metrics x fractions
    assert {s["comparisons"] for s in f["within_one_sd"]["per_scheme"].values()} == {6 * 3 * 2}
    assert all(s["se_bands_overlap"] == 1.0 for s in f["within_one_sd"]["per_scheme"].values())
    assert f["mean_fill_reduces_artifacts"]["holds"] and f["fullgrad_best_least_salient"]["holds"]
    # most-salient scheme: a lower AFOC with the mean is worse (the report reads "better" on both)
    for name in curves:
        curves[name]["mean", "most"] = ([0.4, 0.4], [1.0, 1.0])
    f = pp_lab.findings(_results(curves))
    m = f["mean_fill_reduces_artifacts"]
    assert m["lower_with_mean"] == {"most": 4, "least": 4} and m["better_with_mean"] == {"most": 0, "least": 4}
    assert m["holds_per_scheme"] == {"most": False, "least": True} and not m["holds"]
    # se bands apart on one scheme only: black/least means 0.4 + 0.1 i with se 0.01
    for name in curves:
        curves[name]["black", "least"] = (curves[name]["black", "least"][0], [0.01, 0.01])
    per = pp_lab.findings(_results(curves))["within_one_sd"]["per_scheme"]
    assert per["black/least"]["se_bands_overlap"] == 0.0 and per["mean/most"]["se_bands_overlap"] == 1.0
    # tiny sds: nothing within one sd; Grad-CAM best; random higher with mean fill
    for name in curves:
        curves[name] = {s: (m, [0.0, 0.0]) for s, (m, _) in curves[name].items()}
    curves["grad_cam"]["mean", "least"] = ([-1.0, -1.0], [0.0, 0.0])
    curves["random_attribution"]["mean", "least"] = ([9.0, 9.0], [0.0, 0.0])
    f = pp_lab.findings(_results(curves))
    assert not f["within_one_sd"]["holds"]
    assert f["fullgrad_best_least_salient"]["best"]["afoc"] == "grad_cam"
    assert not f["fullgrad_best_least_salient"]["holds"]
    assert f["mean_fill_reduces_artifacts"]["per_method"]["least"]["random_attribution"] is False


def test_main_writes_the_command_and_versions(tmp_path, monkeypatch):
    monkeypatch.setattr(pp_lab, "REDUCED", TINY)
    monkeypatch.setattr(pp_lab, "method_options",
                        lambda scale, seed, images=None: {"random_attribution": {"seed": seed}})
    out = tmp_path / "pp.json"
    pp_lab.main(["--out", str(out)])
    saved = pp_lab.load_results(out)
    assert saved["command"] == "python -m xai_course.evaluation.pp_lab" and saved["seed"] == 0
    assert {"torch", "xai_course", "python"} <= set(saved["versions"]) and saved["seconds"] >= 0  # rounded: a tiny run may read 0.0


def test_shipped_full_results():
    assert pp_lab.RESULTS.exists(), "the full-scale results ship with the package: run pp_lab --full"
    full = pp_lab.load_results()
    assert full["command"] == "python -m xai_course.evaluation.pp_lab --full"
    assert full["config"]["n"] == pp_lab.FULL["n"] and full["config"]["fractions"] == list(pp_lab.FULL["fractions"])
    assert full["methods"] == list(pp_lab.COMPARED) and set(full["methods"]) == set(METHODS) and "findings" in full
    assert full["seed"] == 0 and {"torch", "xai_course", "python"} <= set(full["versions"])
    for name in full["methods"]:                                          # every metric the lab reads
        assert set(full["pp"][name]["mean"]["most"]) == set(pp_lab.METRICS)
        assert set(full["perturbed"][name]["mean"]["most"]) == {"argmax", "afoc_by_class"}


def test_run_takes_the_perturbation_methods_at_the_scale():
    got = pp_lab.run(TINY, seed=0, methods=list(pp_lab.PERTURBATION_METHODS))
    assert got["methods"] == list(pp_lab.PERTURBATION_METHODS)
    assert got["config"]["stride"] == 8 and got["config"]["cells"] == 2
    for name in pp_lab.PERTURBATION_METHODS:
        assert len(got["pp"][name]["mean"]["least"]["afoc"]["mean"]) == 2
