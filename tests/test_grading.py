"""The autograder (xai_course.grading): markup and release, the plain-data protocol, and gradings of crafted
honest, broken and hostile submissions with the real console commands, as an instructor runs them.

Four gradings run at once (module fixture ``runs``), so the file costs a few grader start-ups:

- ``attacks``: a class folder of every crafted submission (tests/grading_fixtures/submissions, attacks,
  malformed, a named pipe, a student folder with two files) against the made-up chapter 99
  (``--tests tests99 --chapter 99 --hidden hidden99``), as root when the tests run as root;
- ``attacks_user``: the attacks again with ``--sandbox user`` (what holds without root);
- ``course``: the instructor notebooks (one student, full marks) and the released student notebooks
  (another, zero), every chapter;
- ``single``: ``xai-course-grade`` on a named pipe plus a .py file (several files, one of them not a file).

Each hostile submission solves exercise 99.1 by an attack instead of computing it: it must get 0 for it,
and still 1 point for its honest 99.2. On the grader before issue 11 every attack here scored 99.1.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from xai_course.grading import builders, forbidden, grader, markup, protocol, release, remote

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "grading_fixtures"
SUBMISSIONS, ATTACKS, MALFORMED = FIXTURES / "submissions", FIXTURES / "attacks", FIXTURES / "malformed"
TESTS99, HIDDEN99 = FIXTURES / "tests99", FIXTURES / "hidden99"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PUBLIC = ROOT / "xai_course" / "grading" / "public"
TIMEOUT = 20
IS_ROOT = os.geteuid() == 0
SECRETS = [str(HIDDEN99), str(TESTS99), "hidden99", "tests99"]

# crafted submission -> words its 99.1 failure message must contain (99.2 is correct in each and keeps its point)
BROKEN = {
    "raise_at_import": ("No module named 'a_module_that_does_not_exist'",),
    "raise_at_call": ("ValueError: I do not know how yet",),
    "hang": ("time limit exceeded",),
    "wrong_shape": ("has shape (4,), expected (4, 5)",),
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
    "hidden_import": ("no credit", "xai_course"),
    "syntax_error": ("syntax error",),
}
# attack -> (class of attack, words of its 99.1 message or None)
ATTACK = {
    "forge_file": ("forgery by file", None),
    "forge_json": ("forgery by json", None),
    "patch_comparison": ("forgery by patching the comparison", "is wrong"),
    "tensor_subclass": ("forgery by tensor subclass", "is wrong"),
    "frame_inspection": ("forgery by frame inspection", None),
    "code_swap": ("forgery by code swap", "is wrong"),
    "grandchild": ("surviving grandchildren", "is wrong"),
    "read_proc": ("reading /proc", None),
    "write_tests": ("writing test files", "is wrong"),
    "ref_importlib": ("a reference through importlib", "no credit"),
    "ref_thread": ("a reference from a thread", "no credit"),
    "ref_file": ("a reference loaded under another name", "no credit"),
    "ref_notebook": ("the instructor notebook", "no credit"),
    "ref_guard_off": ("switching the guard off", "no credit"),
    "ref_forbidden_module": ("a module only this exercise forbids, by a name built at run time", "no credit"),
    "dir_fd_folder": ("a folder's descriptor as dir_fd (the open event does not carry it)", "no credit"),
    "dir_fd_climb": ("a relative path climbing with .. from a descriptor of the write folder", "no credit"),
    "raising_str": ("an exception whose __str__ raises", "whose message cannot be printed"),
    "huge_print": ("megabytes of output", "far too much output"),
}


def _hash_tree(*folders) -> str:
    h = hashlib.sha256()
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                h.update(str(p).encode() + p.read_bytes())
    return h.hexdigest()


def _cli(*args, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "xai_course.grading", *map(str, args)], capture_output=True,
                          text=True, timeout=900, cwd=cwd, env=env)


def _grader_cmdlines() -> list:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "xai_course.grading.grader" in cmd:
            found.append(cmd)
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("grading")
    klass = base / "class"
    klass.mkdir()
    for folder in (SUBMISSIONS, ATTACKS, MALFORMED):
        for p in folder.iterdir():
            if p.suffix in (".py", ".ipynb"):
                shutil.copy(p, klass / p.name)
    os.mkfifo(klass / "a_named_pipe.ipynb")
    (klass / "two_files").mkdir()  # one student, two files: 99.1 in one, 99.2 in the other
    shutil.copy(MALFORMED / "bad_metadata.ipynb", klass / "two_files" / "b.ipynb")
    (klass / "two_files" / "a.py").write_text((SUBMISSIONS / "good.py").read_text().split("# top-level")[0])
    user = base / "attacks_user"
    shutil.copytree(ATTACKS, user)
    course = base / "course"
    (course / "instructor").mkdir(parents=True)
    for nb in NOTEBOOKS:
        shutil.copy(nb, course / "instructor" / nb.name)
    release.release(ROOT / "notebooks", course / "student")
    single = base / "single"
    single.mkdir()
    os.mkfifo(single / "pipe.ipynb")
    shutil.copy(SUBMISSIONS / "good.py", single / "good.py")
    before = _hash_tree(PUBLIC, TESTS99, HIDDEN99)
    common = ["--tests", TESTS99, "--chapter", "99", "--hidden", HIDDEN99, "--timeout", TIMEOUT]
    jobs = {
        "attacks": ("class", klass, "--out", base / "out-attacks", *common, "--jobs", 2),
        "attacks_user": ("class", user, "--out", base / "out-user", *common, "--jobs", 1, "--sandbox", "user"),
        "course": ("class", course, "--out", base / "out-course", "--jobs", 1),
        "single": (single / "pipe.ipynb", single / "good.py", "--results", base / "single.json", *common),
    }
    cmdlines = []
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {k: pool.submit(_cli, *args, cwd=base) for k, args in jobs.items()}
        while not all(f.done() for f in futures.values()):
            cmdlines += _grader_cmdlines()
            time.sleep(0.5)
        done = {k: f.result() for k, f in futures.items()}
    finished = {k: _hash_tree(base / f"out-{k.split('_')[-1]}") if (base / f"out-{k.split('_')[-1]}").exists() else ""
                for k in ("attacks", "user")}
    time.sleep(2)  # anything left behind would act now
    return {"base": base, "done": done, "cmdlines": cmdlines, "tests_before": before, "finished": finished}


def _report(runs, run, name) -> dict:
    out = {"attacks": "out-attacks", "attacks_user": "out-user", "course": "out-course"}[run]
    path = runs["base"] / out / name / "results.json"
    assert path.exists(), runs["done"][run].stdout[-3000:] + runs["done"][run].stderr[-3000:]
    return json.loads(path.read_text())


def _by_exercise(report):
    scores = {}
    for t in report["tests"]:
        ex = t["name"].split(":")[0].split()[-1]
        got, most = scores.get(ex, (0.0, 0.0))
        scores[ex] = (round(got + t["score"], 6), round(most + t["max_score"], 6))
    return scores


def _message(report, exercise):
    return "\n".join(t["output"] for t in report["tests"] if t["name"].startswith(f"Exercise {exercise}"))


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
    assert ["check"] in [c["metadata"].get("tags") for c in nb["cells"]]
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


@pytest.mark.parametrize("code, why", [
    ("from captum.attr import Saliency\ndef f(m, x, t):\n    return Saliency(m).attribute(x, target=t)", "captum"),
    ("import xai_course.attribution as A\ndef f(m, x, t):\n    return A.saliency(m, x, t)", "xai_course.attribution"),
    ("from xai_course import evaluation\ndef f(a, m):\n    return evaluation.pointing_game(a, m)", "xai_course.evaluation"),
    ("def helper(m, x, t):\n    import zennit\n    return zennit\ndef f(m, x, t):\n    return helper(m, x, t)", "zennit"),
    ("import importlib\ndef f(m, x, t):\n    return importlib.import_module('captum.attr')", "captum"),
])
def test_static_check_finds_reference_implementations(code, why):
    assert why in (forbidden.find(code, ["f"]) or "")


def test_static_check_accepts_from_scratch_code():
    code = ("import torch\nfrom xai_course import models\n\ndef f(model, x, t):\n"
            "    \"\"\"Like Captum's Saliency, but from scratch.\"\"\"\n"
            "    return torch.autograd.grad(model(x)[:, t].sum(), x)[0]\n")
    assert forbidden.find(code, ["f"]) is None


@pytest.mark.parametrize("forbid, expected", [
    ('("scipy", "skimage")', ("scipy", "skimage")), ('"scipy"', ("scipy",)), ("[]", ()),
    ('("torch",)', ValueError), ('("numpy",)', ValueError), ('("scipy.stats",)', ValueError), ("(3,)", ValueError),
])
def test_an_exercise_mark_forbids_top_level_modules_other_than_the_workers_own(tmp_path, forbid, expected):
    (tmp_path / "test_ch97.py").write_text(
        "import pytest\n\n\n"
        f"@pytest.mark.exercise('97.1', points=1, functions=['f'], forbid={forbid})\n"
        "def test_f(submission):\n    pass\n")
    if expected is ValueError:
        with pytest.raises(ValueError, match="forbid"):
            grader.collect([tmp_path], [], None)
    else:
        (item,) = grader.collect([tmp_path], [], None)
        assert item.forbid == expected
        code = "import scipy.stats\n\ndef f(a, b):\n    return scipy.stats.spearmanr(a, b)\n"
        assert (forbidden.find(code, ["f"], item.forbid) is not None) == ("scipy" in expected)


# --- the plain-data protocol and the model recipes (no subprocess) ----------------------------------------
def test_arrays_cross_as_npy_without_pickle_and_come_back_as_plain_tensors():
    class Sneaky(torch.Tensor):
        def __eq__(self, other):
            return True

    arrays = []
    tree = protocol.encode((torch.ones(2, 3).as_subclass(Sneaky), np.zeros(3, dtype=np.int16), {"a": [1.5, None]},
                            torch.tensor(3.0)), arrays)
    blobs = [protocol._npy(a) for a in arrays]
    value = protocol.decode(tree, blobs)
    assert type(value[0]) is torch.Tensor and value[0].shape == (2, 3)
    assert value[1].dtype == np.int16 and value[2] == {"a": [1.5, None]} and value[3].shape == ()
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)  # a pickle inside an .npy
    with pytest.raises(protocol.ProtocolError):
        protocol.load_array(buf.getvalue())
    for bad in ({"$": "pickle", "v": "x"}, {"$": "tensor", "i": 7}, {"$": "module", "v": {}}, {"x": 1}):
        with pytest.raises(protocol.ProtocolError):
            protocol.decode(bad, blobs)
    deep = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(deep, [])


def test_models_cross_as_recipes_and_a_model_without_one_is_a_test_authors_error():
    bn = nn.BatchNorm2d(4).eval()
    bn.running_mean.normal_()
    bn.eps = 1e-3
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, bias=False), bn, nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 2)).eval()
    arrays = []
    tree = builders.encode_module(model, arrays)
    copy = builders.decode_module(tree, lambda i: arrays[i], trusted_recipes=False)
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(copy(x), model(x)) and copy[1].eps == 1e-3

    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="recipe"):
        builders.encode_module(Custom(), [])
    huge = {"structure": {"type": "Linear", "kwargs": {"in_features": 10**5, "out_features": 10**5, "bias": True}},
            "state": [], "training": [False]}
    with pytest.raises(ValueError, match="too large"):
        builders.decode_module(huge, lambda i: None, trusted_recipes=False)
    with pytest.raises(ValueError, match="without a recipe"):  # a worker cannot make the grader run a builder
        builders.decode_module({"recipe": ["model", {"name": "shapes_cnn"}], "state": []}, None, trusted_recipes=False)


def test_malformed_notebooks_become_notes_not_crashes(tmp_path):
    for path in MALFORMED.iterdir():
        extracted, notes = grader.extract([path])
        assert isinstance(extracted, dict) and isinstance(notes, list)
    extracted, notes = grader.extract([MALFORMED / "bad_metadata.ipynb"])
    assert set(extracted) == {"99.2"} and "return inputs *" in extracted["99.2"]["code"]
    assert any("no valid id" in n for n in notes) and any("second cell" in n for n in notes)
    os.mkfifo(tmp_path / "pipe.ipynb")  # would block a plain open() forever
    extracted, notes = grader.extract([tmp_path / "pipe.ipynb"])
    assert extracted == {} and "not a regular file" in notes[0]


def test_every_process_a_worker_left_is_killed_whatever_its_session(tmp_path):
    """kill_all finds descendants through the subreaper, even after setsid and a double fork."""
    script = tmp_path / "tree.py"
    script.write_text(
        "import ctypes, os, sys, time\n"
        "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)\n"           # PR_SET_CHILD_SUBREAPER, like the zygote
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.setpgid(0, 0)\n"
        "        time.sleep(120)\n"
        "    os._exit(0)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        table = remote._processes()
        left = [p for p, (pp, state, _) in table.items() if pp == proc.pid and state != "Z"]
        assert left, "the grandchild should have been reparented to the subreaper"
        assert remote.kill_all(proc.pid) >= 1
        time.sleep(0.2)
        table = remote._processes()
        assert all(table.get(p, (0, "Z"))[1] == "Z" for p in left)
    finally:
        proc.kill()
        proc.wait()


# --- grading crafted submissions ------------------------------------------------------------------------
@pytest.mark.parametrize("run", ["attacks", "attacks_user"])
def test_every_attack_scores_zero_for_what_it_did_not_solve(runs, run):
    failures = []
    for name, (what, words) in ATTACK.items():
        report = _report(runs, run, name)
        scores = _by_exercise(report)
        expected_99_2 = 0.0 if name in ("raising_str", "forge_json") else 1.0  # these broke their own 99.2 too
        if scores.get("99.1") != (0.0, 2.0) or scores.get("99.2") != (expected_99_2, 1.0):
            failures.append(f"{name} ({what}): {scores}")
        if words and words not in _message(report, "99.1"):
            failures.append(f"{name} ({what}): {words!r} not in {_message(report, '99.1')[:300]!r}")
        assert set(scores) == {"99.1", "99.2"}  # --chapter 99: nothing of chapter 98
    assert not failures, "\n".join(failures)


def test_honest_submissions_written_differently_keep_full_marks(runs):
    for run in ("attacks", "attacks_user"):
        report = _report(runs, run, "honest_variants")  # float64, torch.func, loops, hooks
        assert report["score"] == 3.0, _message(report, "99")
    assert _report(runs, "attacks", "good")["score"] == 3.0


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_exercise_fails_with_a_message_and_the_other_is_still_graded(runs, name):
    report = _report(runs, "attacks", name)
    assert _by_exercise(report) == {"99.1": (0.0, 2.0), "99.2": (1.0, 1.0)}, report
    for words in BROKEN[name]:
        assert words in _message(report, "99.1"), _message(report, "99.1")


def test_nothing_changes_after_the_grader_exits_and_nothing_survives(runs):
    for key, out in (("attacks", "out-attacks"), ("user", "out-user")):
        assert _hash_tree(runs["base"] / out) == runs["finished"][key]
        for path in (runs["base"] / out).rglob("results.json"):
            assert "FORGED" not in path.read_text()
    assert _hash_tree(PUBLIC, TESTS99, HIDDEN99) == runs["tests_before"]
    table = remote._processes()
    assert not [p for p, (_, state, uid) in table.items() if uid >= remote.BASE_UID and state != "Z"]
    survivors = []
    for pid in table:
        try:
            if b"XAI-GRANDCHILD-MARKER" in Path(f"/proc/{pid}/cmdline").read_bytes():
                survivors.append(pid)
        except OSError:
            pass
    assert not survivors
    spawn = _message(_report(runs, "attacks", "grandchild"), "99.1")
    assert "spawn attempts" in spawn and "started" not in spawn


def test_no_secret_path_on_any_command_line_or_in_any_report(runs):
    assert runs["cmdlines"], "the grader was never seen running"
    for cmd in runs["cmdlines"]:
        assert not any(s in cmd for s in SECRETS + [str(runs["base"])]), cmd
    for out in ("out-attacks", "out-user"):
        for path in (runs["base"] / out).rglob("results.json"):
            text = path.read_text()
            assert not any(s in text for s in SECRETS), path
    assert "PROC: []" in _message(_report(runs, "attacks", "read_proc"), "99.1")


def test_reports_stay_small_whatever_the_submission_prints_or_raises(runs):
    for name in ("huge_print", "raising_str", "prints_megabytes"):
        path = runs["base"] / "out-attacks" / name / "results.json"
        assert path.stat().st_size < 20_000, name
    assert "characters cut" in _message(_report(runs, "attacks", "raising_str"), "99.2")


def test_the_assignment_decides_the_chapter_not_the_submission(runs):
    report = _report(runs, "attacks", "chapter_98_only")  # a correct chapter-98 cell, graded for chapter 99
    assert (report["score"], report["max_score"]) == (0.0, 3.0)
    assert all(t["name"].startswith("Exercise 99.") for t in report["tests"])


def test_malformed_submissions_get_a_graded_report(runs):
    for name in ("not_json", "cells_not_a_list", "a_named_pipe"):
        report = _report(runs, "attacks", name)
        assert (report["score"], report["max_score"]) == (0.0, 3.0)
        assert "no cell for exercise 99.1" in _message(report, "99.1")
    assert "not a valid notebook" in _report(runs, "attacks", "not_json")["output"]
    assert "not a regular file" in _report(runs, "attacks", "a_named_pipe")["output"]
    bad = _report(runs, "attacks", "bad_metadata")
    assert _by_exercise(bad) == {"99.1": (0.0, 2.0), "99.2": (1.0, 1.0)}
    two = _report(runs, "attacks", "two_files")  # 99.1 from a.py, 99.2 from b.ipynb
    assert two["score"] == 3.0 and "several files" in two["output"]


def test_hidden_tests_split_their_exercises_points_and_stay_hidden(runs):
    report = _report(runs, "attacks", "good")
    hidden = [t for t in report["tests"] if t["visibility"] == "after_published"]
    assert len(hidden) == 1 and hidden[0]["max_score"] == 0.5 and hidden[0]["name"].startswith("Exercise 99.2")


def test_the_class_command_writes_a_csv_of_scores_per_exercise(runs):
    lines = (runs["base"] / "out-attacks" / "scores.csv").read_text().splitlines()
    assert lines[0] == "student,total,max,99.1,99.2"
    rows = {line.split(",")[0]: line.split(",")[1:] for line in lines[1:]}
    assert rows["good"] == ["3", "3", "2", "1"] and rows["forge_file"] == ["1", "3", "0", "1"]


def test_a_named_pipe_next_to_a_file_neither_hangs_nor_crashes(runs):
    done = runs["done"]["single"]
    report = json.loads((runs["base"] / "single.json").read_text())
    assert report["score"] == 3.0 and "not a regular file" in report["output"], done.stdout + done.stderr
    assert done.returncode == 0 and "TOTAL: 3 / 3 points" in done.stdout


def test_python_installed_under_tmp_stays_importable_in_the_sandbox(tmp_path):
    """A virtual environment inside a checkout under /tmp (a CI machine that clones there): the worker's
    private /tmp binds the Python folders back, so a submission imports what is installed there."""
    import tempfile

    site = Path(tempfile.mkdtemp(dir="/tmp")) / "venv" / "site-packages"
    try:
        (site / "installed_under_tmp").mkdir(parents=True)
        (site / "installed_under_tmp" / "__init__.py").write_text("def same(t):\n    return t + 0\n")
        good = (SUBMISSIONS / "good.py").read_text()
        submission = tmp_path / "uses_tmp.py"
        submission.write_text(good.replace("    return torch.autograd.grad(out, x)[0]\n",
                                           "    import installed_under_tmp\n"
                                           "    return installed_under_tmp.same(torch.autograd.grad(out, x)[0])\n", 1))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(site), os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run([sys.executable, "-m", "xai_course.grading", submission, "--results", tmp_path / "r.json",
                               "--tests", TESTS99, "--chapter", "99", "--hidden", HIDDEN99, "--timeout", str(TIMEOUT)],
                              capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
        report = json.loads((tmp_path / "r.json").read_text())
        assert _by_exercise(report)["99.1"] == (2.0, 2.0), _message(report, "99.1") + done.stderr[-2000:]
    finally:
        shutil.rmtree(site.parents[1], ignore_errors=True)


@pytest.mark.skipif(not IS_ROOT, reason="the worker's own uid needs root")
def test_as_root_the_worker_runs_as_another_user(runs):
    import re

    uid = int(re.search(r"UID: (\d+)", _message(_report(runs, "attacks", "read_proc"), "99.1")).group(1))
    assert uid >= remote.BASE_UID
    assert f"UID: {os.getuid()}" in _message(_report(runs, "attacks_user", "read_proc"), "99.1")


# --- the proof: instructor notebooks full marks, released student notebooks zero ------------------------
def test_there_are_chapter_notebooks_to_grade():
    assert len(NOTEBOOKS) >= 2


def test_every_exercise_has_public_tests_with_the_notebooks_points():
    text = "".join(p.read_text() for p in PUBLIC.glob("test_ch*.py"))
    for nb in NOTEBOOKS:
        for ex in markup.exercises(markup.read_notebook(nb)):
            marker = f'@pytest.mark.exercise("{ex.id}", points={ex.points},'
            assert marker in text, f"{nb.name}: no public test marked {marker}"


def test_the_instructor_notebooks_score_full_marks_and_the_student_versions_zero(runs):
    expected = sum(ex.points for nb in NOTEBOOKS for ex in markup.exercises(markup.read_notebook(nb)))
    instructor, student = _report(runs, "course", "instructor"), _report(runs, "course", "student")
    assert (instructor["score"], instructor["max_score"]) == (expected, expected), [
        (t["name"], t["output"][:300]) for t in instructor["tests"] if t["status"] != "passed"]
    assert (student["score"], student["max_score"]) == (0, expected)
    assert all("not implemented yet" in t["output"] for t in student["tests"])
    assert {t["visibility"] for t in instructor["tests"]} == {"visible"}
