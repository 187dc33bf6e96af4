"""Solutions stay with the instructor: the student versions, the book built from them, the public tree.

- every chapter's student version is leak-free, its exercises are stubs, its answers are gone;
- the Sphinx extension ``xai_course.grading.student_book`` gives the book the student versions, unless
  ``XAI_COURSE_SOLUTIONS=1`` (the instructor build): a tiny notebook is built both ways and the HTML read;
- ``python -m xai_course.grading publish OUT`` writes the public tree without solutions or instructor-only
  files, and refuses a tree with a planted leak.
"""
from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xai_course.grading import markup, publish, release, student_book

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# the chapters whose exercises and discussion answers follow the rules of issue 12 (others join as they do)
REWORKED = ("01", "02", "03", "04", "05", "13")
SECRET = "return 2 * x + 0  # the doubling line that must stay secret"
ANSWER = "The instructor's answer: forty-two, for reasons that stay secret."


def _cell(kind, text, tags=None, exercise=None):
    meta = {}
    if tags:
        meta["tags"] = tags
    if exercise:
        meta["exercise"] = {"id": exercise, "points": 1}
    cell = {"cell_type": kind, "metadata": meta, "source": text}
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def _fixture_notebook() -> dict:
    """One exercise with its check cell and an answer cell, as in a chapter."""
    return {"cells": [
        _cell("markdown", "# Fixture chapter\n\n### Exercise 99.1: doubling\n"),
        _cell("code", "# Exercise 99.1 (1 point): doubling\n\n\ndef double(x):\n    \"\"\"2 x.\"\"\"\n"
                      f"    # BEGIN SOLUTION\n    {SECRET}\n    # END SOLUTION\n", ["exercise"], "99.1"),
        _cell("code", "from xai_course.exercise import check\n\nwith check(\"99.1\"):\n"
                      "    assert double(3) == 6, \"double(3) should be 6\"\n", ["check"]),
        _cell("markdown", "## Discussion questions\n\n1. Why?\n"),
        _cell("markdown", ANSWER + "\n", ["solution"]),
    ], "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}


# --- the chapters -------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_version_is_leak_free_with_stubs_and_no_answers(path):
    master = markup.read_notebook(path)
    student = json.loads(student_book.student_text(json.dumps(master), path.name))   # raises on a leak
    assert release.leaks(master, student) == []
    assert not any(release.REMOVED_TAGS & set(markup.tags(c)) for c in student["cells"])
    for exercise in markup.exercises(student):
        assert f'raise NotImplementedError("Exercise {exercise.number}")' in exercise.source
        assert markup.BEGIN not in exercise.source


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2] in REWORKED], ids=lambda p: p.stem)
def test_check_cells_hold_no_solution_and_discussions_have_answers(path):
    nb = markup.read_notebook(path)
    cells = nb["cells"]
    for exercise in markup.exercises(nb):
        check = markup.source(cells[exercise.index + 1])
        assert "check" in markup.tags(cells[exercise.index + 1]), f"{exercise.id}: no check cell after it"
        assert f'with check("{exercise.id}")' in check, f"{exercise.id}: the check cell must use check()"
        shown = [l for l in markup.solution_lines(exercise.source) if len(l) > release.GENERIC and l in check]
        assert not shown, f"{exercise.id}: the check cell holds solution lines {shown}"
        assert "xai_course.attribution" not in check or exercise.id in ("04.3",), (
            f"{exercise.id}: a check cell must not call the package's methods")
    questions = [i for i, c in enumerate(cells) if markup.source(c).startswith("## Discussion questions")]
    assert len(questions) == 1, f"{path.name}: one discussion section expected"
    after = cells[questions[0] + 1]
    assert after["cell_type"] == "markdown" and "solution" in markup.tags(after), (
        f"{path.name}: the instructor's answers (a markdown cell tagged 'solution') must follow the questions")


# --- the book ---------------------------------------------------------------------------------------
class _Env:
    def doc2path(self, docname):
        return ROOT / f"{docname}.ipynb"


class _App:
    env = _Env()


def test_book_extension_gives_the_student_version_unless_instructor_build(monkeypatch):
    text = json.dumps(_fixture_notebook())
    monkeypatch.delenv(student_book.ENV, raising=False)
    source = [text]
    student_book._source_read(_App(), "notebooks/99_fixture", source)
    assert SECRET not in source[0] and ANSWER not in source[0] and "NotImplementedError" in source[0]
    monkeypatch.setenv(student_book.ENV, "1")
    source = [text]
    student_book._source_read(_App(), "notebooks/99_fixture", source)
    assert source[0] == text


def test_book_extension_fails_the_build_on_a_leak(monkeypatch):
    from sphinx.errors import ExtensionError

    nb = _fixture_notebook()
    nb["cells"].insert(1, _cell("markdown", f"Hint: `{SECRET.upper().lower()}`, pasted inline\n"))
    monkeypatch.delenv(student_book.ENV, raising=False)
    with pytest.raises(ExtensionError, match="leak"):
        student_book._source_read(_App(), "notebooks/99_fixture", [json.dumps(nb)])


def _build(tmp_path, instructor: bool) -> str:
    src, out = tmp_path / "src", tmp_path / ("instructor" if instructor else "student")
    src.mkdir(exist_ok=True)
    (src / "conf.py").write_text(
        "extensions = ['myst_nb', 'xai_course.grading.student_book']\n"
        "nb_execution_mode = 'force'\nnb_execution_raise_on_error = True\nexclude_patterns = ['_build']\n")
    (src / "index.ipynb").write_text(json.dumps(_fixture_notebook()))
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    env.pop(student_book.ENV, None)
    if instructor:
        env[student_book.ENV] = "1"
    done = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E", str(src), str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return html.unescape(re.sub(r"<[^>]+>", "", (out / "index.html").read_text(encoding="utf-8")))


def test_built_html_shows_stubs_to_students_and_solutions_to_the_instructor(tmp_path):
    student = _build(tmp_path, instructor=False)
    assert "Exercise 99.1: not done yet" in student
    assert SECRET not in student and "doubling line" not in student and "forty-two" not in student
    assert 'raise NotImplementedError("Exercise 99.1")' in student
    instructor = _build(tmp_path, instructor=True)
    # (the HTML highlights the code and typesets the quotes: look for words of both)
    assert "the doubling line that must stay secret" in instructor and "forty-two" in instructor
    assert "Exercise 99.1: all checks passed" in instructor


# --- the public tree --------------------------------------------------------------------------------
def _master(tmp_path) -> Path:
    root = tmp_path / "master"
    files = {
        "README.md": "# The course\n",
        "notebooks/01_fixture.ipynb": json.dumps(_fixture_notebook()),
        "xai_course/__init__.py": "",
        "xai_course/attribution/double.py": "def double(x):\n    return 2 * x\n",
        "xai_course/grading/public/test_ch01.py": f"def _reference(x):\n    {SECRET}\n",
        "tests/test_notebooks.py": "def test(): pass\n",
        "hidden_tests/test_ch01_hidden.py": "def test(): pass\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_publish_writes_student_notebooks_and_no_instructor_files(tmp_path):
    written = publish.publish(tmp_path / "public", _master(tmp_path))
    out = tmp_path / "public"
    names = sorted(p.relative_to(out).as_posix() for p in written)
    assert names == ["README.md", "notebooks/01_fixture.ipynb", "xai_course/__init__.py",
                     "xai_course/attribution/double.py"]
    text = (out / "notebooks/01_fixture.ipynb").read_text()
    assert SECRET not in text and "forty-two" not in text and 'raise NotImplementedError(\\"Exercise 99.1\\")' in text


def test_publish_refuses_a_planted_leak_and_a_non_empty_target(tmp_path):
    root = _master(tmp_path)
    (root / "book").mkdir()
    (root / "book" / "hints.md").write_text(f"A hint: `{SECRET}`\n")
    with pytest.raises(release.LeakError, match="book/hints.md"):
        publish.publish(tmp_path / "public", root)
    with pytest.raises(ValueError, match="not empty"):
        publish.publish(tmp_path / "public", root)


def test_publish_of_this_repository_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "xai_course.grading", "publish", str(tmp_path / "public")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "public"
    assert not list(out.glob("xai_course/grading/public/test_*.py")) and not (out / "tests").exists()
    for path in NOTEBOOKS:
        published = json.loads((out / "notebooks" / path.name).read_text())
        assert published == release.student_version(markup.read_notebook(path))
