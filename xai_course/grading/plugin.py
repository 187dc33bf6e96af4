"""The pytest plugin of the autograder: ``pytest -p xai_course.grading.plugin --submission PATH TESTS...``.

A grading test is a test function marked with the exercise it grades and taking the ``submission``::

    @pytest.mark.exercise("01.2", points=3, functions=["input_x_gradient"])
    def test_matches_reference(submission):
        ...  # submission.input_x_gradient is the student's function

- ``points`` is the exercise's total; it is split evenly over all the tests of that exercise (public and
  hidden): partial credit per test. ``functions`` are the submission's functions the exercise is about.
- Each test runs in its own subprocess (:mod:`~xai_course.grading.sandbox`) with a time limit; tests run
  ``--grading-jobs`` at a time (default: the number of CPUs).
- An exercise whose functions use a reference implementation (:mod:`~xai_course.grading.forbidden`)
  gets zero for all its tests, with the reason.
- The end of the run prints a per-exercise summary and, with ``--results FILE``, writes Gradescope's
  ``results.json``. Tests outside ``xai_course/grading/public`` are reported as hidden
  (visibility ``after_published``).

Without ``--submission`` (nor ``XAI_SUBMISSION``) the plugin only registers its options and marker.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import forbidden, markup, sandbox

PUBLIC = Path(__file__).resolve().parent / "public"


def pytest_addoption(parser):
    group = parser.getgroup("grading", "xai_course autograder")
    group.addoption("--submission", default=None, help="student notebook (.ipynb) or .py file to grade "
                                                       "(default: $XAI_SUBMISSION)")
    group.addoption("--grading-timeout", type=float, default=30.0, help="time limit per test in seconds (30)")
    group.addoption("--grading-jobs", type=int, default=0, help="tests run at the same time (default: CPUs)")
    group.addoption("--chapter", action="append", default=None,
                    help="grade only this chapter's exercises, e.g. 01 (default: the chapters of the notebook's "
                         "exercise cells, or of a NN_name.py file name; else all)")
    group.addoption("--results", default=None, help="write Gradescope's results.json here")


def pytest_configure(config):
    config.addinivalue_line("markers", "exercise(id, points, functions): a grading test of exercise `id`")
    path = config.getoption("--submission") or os.environ.get("XAI_SUBMISSION")
    if path:
        config.pluginmanager.register(Grader(config, path), "xai_course_grader")


@pytest.fixture
def submission():
    """The student's exercise code (only available inside the grading subprocess)."""
    return None


class Grader:
    def __init__(self, config, path):
        self.config = config
        self.path = Path(path)
        self.timeout = config.getoption("--grading-timeout")
        self.jobs = config.getoption("--grading-jobs") or os.cpu_count() or 1
        self.tmp = tempfile.TemporaryDirectory(prefix="xai-submission-")
        try:
            self.extracted = markup.extract(self.path)
        except (OSError, ValueError) as e:  # a missing file, not a notebook, a notebook that is not JSON
            raise pytest.UsageError(f"cannot grade {self.path}: {e}") from None
        self.code_paths = {}
        for i, (key, entry) in enumerate(self.extracted.items()):
            p = Path(self.tmp.name) / f"exercise_{i}.py"
            p.write_text(entry["code"], encoding="utf-8")
            self.code_paths[key] = p
        (Path(self.tmp.name) / "missing.py").write_text("", encoding="utf-8")
        self.chapters = chapters_of(self.path, self.extracted, config.getoption("--chapter"))
        self.pending = {}
        self.results = OrderedDict()  # nodeid -> record
        self.exercises = OrderedDict()  # id -> {"points", "tests", "title"}

    # --- collection: points, static checks, and start the subprocesses ---------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        if self.chapters:  # grade a chapter's notebook with that chapter's tests only
            other = [item for item in items if item.get_closest_marker("exercise")
                     and self._exercise_of(item).split(".")[0] not in self.chapters]
            if other:
                self.config.hook.pytest_deselected(items=other)
                items[:] = [item for item in items if item not in other]
        graded = [item for item in items if item.get_closest_marker("exercise")]
        for item in graded:
            marker = item.get_closest_marker("exercise")
            ex_id = str(marker.args[0] if marker.args else marker.kwargs["id"])
            entry = self.exercises.setdefault(ex_id, {"points": marker.kwargs.get("points", 1), "tests": [],
                                                       "functions": set()})
            entry["tests"].append(item.nodeid)
            entry["functions"].update(marker.kwargs.get("functions", []))
        pool = ThreadPoolExecutor(self.jobs)
        for item in graded:
            ex_id = self._exercise_of(item)
            code = markup.code_for(self.extracted, ex_id)
            reason = forbidden.find(code["code"], self.exercises[ex_id]["functions"])
            if reason:
                self.pending[item.nodeid] = {"status": "forbidden", "output": "", "message":
                                             f"no credit: {reason}; the exercise must be implemented from scratch"}
                continue
            key = ex_id if ex_id in self.extracted else markup.ALL
            params = getattr(getattr(item, "callspec", None), "params", {})
            self.pending[item.nodeid] = pool.submit(
                sandbox.run_test, code_path=self.code_paths.get(key, Path(self.tmp.name) / "missing.py"),
                code_error=code["error"], exercise=ex_id, test_file=str(item.path), test_name=item.originalname,
                params=params, timeout=self.timeout)
        pool.shutdown(wait=False)

    def _exercise_of(self, item) -> str:
        marker = item.get_closest_marker("exercise")
        return str(marker.args[0] if marker.args else marker.kwargs["id"])

    # --- running: wait for the subprocess, report pass/fail ------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem):
        if pyfuncitem.nodeid not in self.pending:
            return None
        result = self.pending[pyfuncitem.nodeid]
        if not isinstance(result, dict):
            result = result.result()
        ex_id = self._exercise_of(pyfuncitem)
        entry = self.exercises[ex_id]
        max_score = entry["points"] / len(entry["tests"])
        passed = result["status"] == "passed"
        hidden = PUBLIC not in Path(pyfuncitem.path).resolve().parents
        self.results[pyfuncitem.nodeid] = {
            "exercise": ex_id, "test": pyfuncitem.name, "status": result["status"], "message": result["message"],
            "output": result.get("output", ""), "score": max_score if passed else 0.0, "max_score": max_score,
            "hidden": hidden}
        if not passed:
            pytest.fail(f"Exercise {ex_id}: {result['message']}", pytrace=False)
        return True

    # --- reporting ---------------------------------------------------------------------------------------
    def totals(self):
        per = OrderedDict()
        for ex_id in sorted(self.exercises):
            records = [self.results[n] for n in self.exercises[ex_id]["tests"] if n in self.results]
            per[ex_id] = (sum(r["score"] for r in records), float(self.exercises[ex_id]["points"]), records)
        return per

    def pytest_terminal_summary(self, terminalreporter):
        tr = terminalreporter
        tr.section(f"Grading {self.path.name}")
        total = maximum = 0.0
        for ex_id, (score, points, records) in self.totals().items():
            total, maximum = total + score, maximum + points
            passed = sum(r["status"] == "passed" for r in records)
            mark = "PASS" if passed == len(records) else ("PART" if passed else "FAIL")
            tr.write_line(f"[{mark}] Exercise {ex_id}: {_fmt(score)} / {_fmt(points)} points "
                          f"({passed} of {len(records)} tests passed)")
            failures = OrderedDict()  # one line per distinct message, naming the tests that got it
            for r in records:
                if r["status"] != "passed":
                    failures.setdefault(r["message"].strip() or "failed", []).append(
                        "a hidden test" if r["hidden"] else r["test"])
            for message, names in failures.items():
                lines = message.splitlines()
                hidden = names.count("a hidden test")
                names = [n for n in names if n != "a hidden test"] + (
                    [f"{hidden} hidden test{'s' if hidden > 1 else ''}"] if hidden else [])
                tr.write_line(f"    - {', '.join(names)}:")
                for line in lines[:8]:
                    tr.write_line(f"        {line}")
        tr.write_line(f"TOTAL: {_fmt(total)} / {_fmt(maximum)} points")

    def pytest_sessionfinish(self, session):
        out = self.config.getoption("--results")
        if out:
            tests, total, maximum = [], 0.0, 0.0
            for ex_id, (score, points, records) in self.totals().items():
                total, maximum = total + score, maximum + points
                for r in records:
                    text = r["message"] if r["status"] != "passed" else "passed"
                    if r["output"].strip():
                        text += "\n--- output ---\n" + r["output"]
                    tests.append({"name": f"Exercise {ex_id}: {r['test']}", "score": round(r["score"], 4),
                                  "max_score": round(r["max_score"], 4), "output": text,
                                  "visibility": "after_published" if r["hidden"] else "visible",
                                  "status": "passed" if r["status"] == "passed" else "failed"})
            report = {"score": round(total, 4), "max_score": round(maximum, 4), "tests": tests,
                      "visibility": "visible", "stdout_visibility": "hidden",
                      "output": f"Graded {self.path.name}: {_fmt(total)} / {_fmt(maximum)} points"}
            Path(out).write_text(json.dumps(report, indent=2), encoding="utf-8")
        self.tmp.cleanup()


def chapters_of(path: Path, extracted, chosen=None):
    """The chapters (``"01"``, ...) a submission is graded on; an empty set means all of them."""
    if chosen:
        return {f"{int(c):02d}" for c in chosen}
    found = {key.split(".")[0] for key in extracted if key != markup.ALL}
    if not found and path.name[:2].isdigit() and path.name[2:3] in ("_", "-", "."):
        found = {path.name[:2]}
    return found


def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))
