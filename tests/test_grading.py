"""The autograder (xai_course.grading): markup, release, sandboxed grading of crafted submissions, and the
proof that the instructor notebooks score full marks and the released student notebooks zero.

Every grading below runs the real command line (``python -m xai_course.grading``) in a subprocess, as an
instructor would; they all start at once in a small pool (module fixture ``graded``), so the file runs
in about two minutes on two cores. Per-test time limits are small (``TIMEOUT``).
"""
from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from xai_course.grading import forbidden, markup, release

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "grading_fixtures"
SUBMISSIONS = FIXTURES / "submissions"
TESTS99 = FIXTURES / "tests99"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PUBLIC = ROOT / "xai_course" / "grading" / "public"
TIMEOUT = 6

# crafted submission -> (score of exercise 99.1 out of 2, words its failure message must contain)
# In every one, exercise 99.2 (`times_input`) is correct and must still get its point.
BROKEN = {
    "raise_at_import": ("No module named 'a_module_that_does_not_exist'",),
    "raise_at_call": ("ValueError: I do not know how yet",),
    "hang": ("time limit exceeded",),
    "wrong_shape": ("has shape (4,), expected (4, 5)",),  # the MLP test
    "nan": ("NaN",),
    "none": ("is None", "return"),
    "sys_exit": ("sys.exit(3)",),
    "os_exit": ("os._exit()",),
    "segfault": ("segmentation fault",),
    "grad_off": ("switched gradients off",),
    "default_dtype": ("default dtype",),
    "mutates_model": ("changed the model in place",),
    "memory_hog": ("too much memory",),
    "uses_captum": ("no credit", "captum"),
    "uses_package": ("no credit", "xai_course.attribution"),
    "hidden_import": ("no credit", "xai_course.attribution"),
}


def _grade(submission: Path, out: Path, *extra: str) -> dict:
    """Run the grader's command line; returns results.json plus the printed summary and exit code."""
    results = out / f"{submission.stem}-{abs(hash(str(submission)))}.json"
    cmd = [sys.executable, "-m", "xai_course.grading", str(submission), "--results", str(results),
           "--timeout", str(TIMEOUT), "--jobs", "1", *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=out)
    assert results.exists(), f"no results.json for {submission.name}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    report = json.loads(results.read_text())
    report["summary"], report["returncode"] = done.stdout, done.returncode
    return report


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    if NOTEBOOKS:
        release.release(ROOT / "notebooks", out)
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory, student_dir):
    """Every grading this file checks, run concurrently: {key: results.json as a dict}."""
    out = tmp_path_factory.mktemp("graded")
    jobs = {}
    for nb in NOTEBOOKS:  # the longest gradings first
        jobs[f"instructor/{nb.name}"] = (nb,)
        jobs[f"student/{nb.name}"] = (student_dir / nb.name,)
    jobs.update({name: (SUBMISSIONS / f"{name}.py", "--tests", str(TESTS99)) for name in [*BROKEN, "good",
                                                                                          "prints_megabytes"]})
    jobs["syntax_error"] = (SUBMISSIONS / "syntax_error.ipynb", "--tests", str(TESTS99))
    jobs["hidden_dir"] = (SUBMISSIONS / "good.py", "--tests", str(TESTS99), "--hidden", str(FIXTURES / "hidden99"))
    with ThreadPoolExecutor(3) as pool:
        futures = {key: pool.submit(_grade, args[0], out, *args[1:]) for key, args in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def _by_exercise(report):
    scores = {}
    for t in report["tests"]:
        ex = t["name"].split(":")[0].split()[-1]
        got, most = scores.get(ex, (0.0, 0.0))
        scores[ex] = (got + t["score"], most + t["max_score"])
    return scores


# --- markup and release (no subprocess) -----------------------------------------------------------------
def test_strip_solutions_keeps_indentation_and_stays_valid_python():
    code = ("def f(x):\n    \"\"\"Doc.\"\"\"\n    if x:\n        # BEGIN SOLUTION\n        return 1\n        # END SOLUTION\n"
            "    # BEGIN SOLUTION\n    return 2\n    # END SOLUTION\n")
    stub = markup.strip_solutions(code, "9.1")
    assert stub == ('def f(x):\n    """Doc."""\n    if x:\n        raise NotImplementedError("Exercise 9.1")\n'
                    '    raise NotImplementedError("Exercise 9.1")\n')
    compile(stub, "stub", "exec")
    with pytest.raises(ValueError, match="without"):
        markup.strip_solutions("    # BEGIN SOLUTION\n    x = 1\n", "9.1")


def test_release_strips_solutions_hidden_cells_and_outputs(tmp_path):
    (written,) = release.release(FIXTURES / "instructor", tmp_path)
    nb = json.loads(written.read_text())
    text = json.dumps(nb)
    assert "secret_answer" not in text and "autograd.grad" not in text and "inputs[None]" not in text
    assert text.count('raise NotImplementedError(\\"Exercise 99.') == 3
    assert all(c.get("outputs", []) == [] and c.get("execution_count") is None for c in nb["cells"])
    assert ["check"] in [c["metadata"].get("tags") for c in nb["cells"]]  # check cells are kept
    for ex in markup.exercises(nb):
        compile(ex.source, ex.id, "exec")


def test_release_refuses_a_leaking_notebook(tmp_path):
    nb = markup.read_notebook(FIXTURES / "instructor" / "99_fixture.ipynb")
    nb["cells"].append({"cell_type": "markdown", "metadata": {},
                        "source": "Hint:\n    x = inputs.detach().clone().requires_grad_(True)\n"})
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "99_leaky.ipynb").write_text(json.dumps(nb))
    with pytest.raises(release.LeakError, match="requires_grad_"):
        release.release(tmp_path / "nb", tmp_path / "out")
    done = subprocess.run([sys.executable, "-m", "xai_course.grading", "release", "--notebooks", str(tmp_path / "nb"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode != 0 and "leak" in done.stderr


def test_extract_keeps_only_imports_and_definitions():
    code = markup.extract(SUBMISSIONS / "good.py")[markup.ALL]["code"]
    assert "def gradient" in code and "import torch" in code and "SystemExit" not in code


@pytest.mark.parametrize("code, why", [
    ("from captum.attr import Saliency\ndef f(m, x, t):\n    return Saliency(m).attribute(x, target=t)", "captum"),
    ("import xai_course.attribution as A\ndef f(m, x, t):\n    return A.saliency(m, x, t)", "xai_course.attribution"),
    ("import xai_course\ndef f(m, x, t):\n    return xai_course.attribution.saliency(m, x, t)", "xai_course.attribution"),
    ("from xai_course import attribution\ndef f(m, x, t):\n    return attribution.METHODS['saliency'](m, x, t)",
     "xai_course.attribution"),
    ("def helper(m, x, t):\n    import zennit\n    return zennit\ndef f(m, x, t):\n    return helper(m, x, t)", "zennit"),
    ("import importlib\ndef f(m, x, t):\n    return importlib.import_module('captum.attr')", "captum"),
])
def test_static_check_finds_reference_implementations(code, why):
    assert why in (forbidden.find(code, ["f"]) or "")


def test_static_check_accepts_from_scratch_code():
    code = ("import torch\nfrom xai_course import models\n\ndef f(model, x, t):\n"
            "    \"\"\"Like Captum's Saliency, but from scratch.\"\"\"\n    print('saliency')\n"
            "    return torch.autograd.grad(model(x)[:, t].sum(), x)[0]\n")
    assert forbidden.find(code, ["f"]) is None


# --- grading crafted submissions ------------------------------------------------------------------------
def test_a_correct_submission_gets_full_marks_without_running_its_top_level_code(graded):
    report = graded["good"]
    assert (report["score"], report["max_score"]) == (3.0, 3.0), report["summary"]
    assert report["returncode"] == 0
    assert "TOTAL: 3 / 3 points" in report["summary"]
    assert {t["visibility"] for t in report["tests"]} == {"after_published"}  # tests outside public/


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_exercise_fails_with_a_message_and_the_others_are_still_graded(graded, name):
    report = graded[name]
    scores = _by_exercise(report)
    assert scores == {"99.1": (0.0, 2.0), "99.2": (1.0, 1.0)}, report["summary"]
    assert (report["score"], report["max_score"]) == (1.0, 3.0)
    for t in report["tests"]:
        if t["name"].startswith("Exercise 99.1"):
            for words in BROKEN[name]:
                assert words in t["output"], f"{name}: {words!r} not in {t['output']!r}"
    assert "Exercise 99.1: 0 / 2 points" in report["summary"]


def test_megabytes_of_prints_are_truncated_in_the_report(graded):
    report = graded["prints_megabytes"]
    assert report["score"] == 3.0, report["summary"]
    for t in report["tests"]:
        if t["name"].startswith("Exercise 99.1"):
            assert "spam" in t["output"] and "bytes of output left out" in t["output"]
            assert len(t["output"]) < 6000


def test_a_syntax_error_in_one_notebook_cell_costs_only_that_exercise(graded):
    report = graded["syntax_error"]
    assert _by_exercise(report) == {"99.1": (0.0, 2.0), "99.2": (1.0, 1.0)}, report["summary"]
    assert "syntax error" in report["tests"][0]["output"]


def test_hidden_tests_split_the_points_of_their_exercise(graded):
    report = graded["hidden_dir"]
    assert report["max_score"] == 3.0 and report["score"] == 3.0, report["summary"]
    assert len([t for t in report["tests"] if t["name"].startswith("Exercise 99.2")]) == 2
    assert all(abs(t["max_score"] - 0.5) < 1e-9 for t in report["tests"] if t["name"].startswith("Exercise 99.2"))


# --- the proof: instructor notebooks full marks, released student notebooks zero ------------------------
def _notebook_ids():
    return [nb.name for nb in NOTEBOOKS]


def test_there_are_chapter_notebooks_to_grade():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("name", _notebook_ids())
def test_every_exercise_has_public_tests_with_the_notebooks_points(name):
    from xai_course.grading.plugin import PUBLIC as public_dir

    text = "".join(p.read_text() for p in public_dir.glob("test_ch*.py"))
    for ex in markup.exercises(markup.read_notebook(ROOT / "notebooks" / name)):
        marker = f'@pytest.mark.exercise("{ex.id}", points={ex.points},'
        assert marker in text, f"{name}: no public test marked {marker} (points must match the notebook's metadata)"


@pytest.mark.parametrize("name", _notebook_ids())
def test_the_instructor_notebook_scores_full_marks(graded, name):
    report = graded[f"instructor/{name}"]
    expected = sum(ex.points for ex in markup.exercises(markup.read_notebook(ROOT / "notebooks" / name)))
    assert report["max_score"] == expected and report["score"] == expected, report["summary"]
    assert report["returncode"] == 0
    assert {t["visibility"] for t in report["tests"]} == {"visible"}


@pytest.mark.parametrize("name", _notebook_ids())
def test_the_released_student_notebook_scores_zero(graded, name):
    report = graded[f"student/{name}"]
    expected = sum(ex.points for ex in markup.exercises(markup.read_notebook(ROOT / "notebooks" / name)))
    assert report["score"] == 0 and report["max_score"] == expected, report["summary"]
    assert report["tests"] and all("not implemented yet" in t["output"] for t in report["tests"])


def test_the_plugin_without_a_submission_leaves_the_repositorys_pytest_alone():
    done = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "xai_course.grading.plugin",
                           "-p", "no:cacheprovider", str(ROOT / "tests")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "grading_fixtures" not in done.stdout  # the crafted chapter-99 tests are only for the grader
