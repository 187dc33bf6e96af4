"""The chapter notebooks as stored: no outputs, the template's setup cell, exercises marked up for grading.

(Executing them is the book build's job: `jupyter-book build .` fails on any cell error.)
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
FORBIDDEN = ("xai_course.attribution", "captum", "from xai_course import attribution")


def cells(path):
    return json.loads(path.read_text())["cells"]


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def exercises(path):
    found = []
    nb = cells(path)
    for i, cell in enumerate(nb):
        if "exercise" in cell.get("metadata", {}).get("tags", []):
            found.append((i, cell, nb[i + 1] if i + 1 < len(nb) else None))
    return found


def strip_solutions(code: str) -> str:
    """What the student version of an exercise cell looks like (the markup's contract)."""
    out, skipping = [], False
    for line in code.splitlines():
        if line.strip() == BEGIN:
            skipping = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("exercise")')
        elif line.strip() == END:
            skipping = False
        elif not skipping:
            out.append(line)
    return "\n".join(out)


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 2


def test_every_notebook_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in toc, f"{nb.name} is not in _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    for cell in cells(path):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, \
                f"{path.name}: strip outputs (jupyter nbconvert --clear-output --inplace)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_installs_from_the_books_repository(path):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"]
    setup = next(source(c) for c in cells(path) if c["cell_type"] == "code")
    assert f'REPOSITORY = "{url}"' in setup, f"{path.name}: the setup cell's REPOSITORY must be {url}"
    assert "google.colab" in setup


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_parse(path):
    for cell in cells(path):
        if cell["cell_type"] == "code":
            ast.parse(source(cell))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_are_marked_up_for_grading(path):
    chapter = path.name[:2]
    found = exercises(path)
    assert len(found) >= 3, f"{path.name} has {len(found)} exercises, at least 3 are required"
    ids = []
    for i, cell, check in found:
        meta = cell["metadata"].get("exercise", {})
        code = source(cell)
        ex_id, points = meta.get("id"), meta.get("points")
        assert re.fullmatch(rf"{chapter}\.\d+", str(ex_id)), f"cell {i}: exercise id {ex_id!r}"
        assert isinstance(points, int) and points > 0, f"exercise {ex_id}: points {points!r}"
        ids.append(ex_id)
        number = f"{int(chapter)}.{ex_id.split('.')[1]}"
        assert code.splitlines()[0].startswith(f"# Exercise {number} ({points} point"), \
            f"exercise {ex_id}: first line must be '# Exercise {number} ({points} points): ...'"
        assert code.count(BEGIN) == code.count(END) >= 1, f"exercise {ex_id}: unbalanced solution markers"
        assert not any(word in code for word in FORBIDDEN), f"exercise {ex_id} imports the answer"
        tree = ast.parse(code)
        kinds = {type(node).__name__ for node in tree.body}
        assert kinds <= {"Import", "ImportFrom", "FunctionDef", "Assign", "Expr"}, \
            f"exercise {ex_id}: only imports, definitions and constants at top level, got {kinds}"
        assert any(isinstance(node, ast.FunctionDef) for node in tree.body)
        student = ast.parse(strip_solutions(code))
        assert not any(BEGIN in line for line in ast.unparse(student).splitlines())
        assert check is not None and "check" in check.get("metadata", {}).get("tags", []), \
            f"exercise {ex_id} must be followed by a cell tagged 'check'"
    assert len(set(ids)) == len(ids), f"{path.name}: duplicate exercise ids"
