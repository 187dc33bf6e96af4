"""The exercise markup of the chapter notebooks, and extracting a submission's exercise code.

An exercise is ONE code cell with metadata ``{"tags": ["exercise"], "exercise": {"id": "NN.K", "points": P}}``
whose first line is ``# Exercise N.K (P points): <title>``. The instructor's solution sits between the lines
``# BEGIN SOLUTION`` and ``# END SOLUTION``; the student version replaces each such block (markers included)
by ``raise NotImplementedError("Exercise N.K")`` at the markers' indentation.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
ALL = "*"  # key of the code that holds every exercise (a .py submission has no cells)
KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


@dataclass
class Exercise:
    id: str          # "01.2"
    points: int
    title: str       # from the cell's first line
    index: int       # the cell's index in the notebook
    source: str      # the cell's code

    @property
    def number(self) -> str:
        """``"1.2"`` for ``"01.2"``: how the exercise is named to students."""
        chapter, k = self.id.split(".")
        return f"{int(chapter)}.{k}"


def source(cell) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def tags(cell) -> List[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def read_notebook(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def exercises(nb: dict) -> List[Exercise]:
    """The exercise cells of a notebook (a dict as stored on disk), in order."""
    found = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code" or "exercise" not in tags(cell):
            continue
        meta = cell.get("metadata", {}).get("exercise", {})
        code = source(cell)
        first = code.splitlines()[0] if code.strip() else ""
        title = re.sub(r"^#\s*Exercise\s+[\d.]+\s*(\([^)]*\))?\s*:?\s*", "", first).strip()
        found.append(Exercise(str(meta.get("id", f"?{i}")), int(meta.get("points", 0) or 0), title, i, code))
    return found


def strip_solutions(code: str, number: str) -> str:
    """The student version of an exercise cell: every solution block becomes ``raise NotImplementedError``."""
    out, inside = [], False
    for line in code.splitlines():
        if line.strip() == BEGIN:
            if inside:
                raise ValueError(f"Exercise {number}: '{BEGIN}' twice without '{END}'")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("Exercise {number}")')
        elif line.strip() == END:
            if not inside:
                raise ValueError(f"Exercise {number}: '{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"Exercise {number}: '{BEGIN}' without '{END}'")
    return "\n".join(out) + ("\n" if code.endswith("\n") else "")


def solution_lines(code: str) -> List[str]:
    """The non-blank lines (stripped) between the solution markers."""
    lines, inside = [], False
    for line in code.splitlines():
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def keep_definitions(code: str) -> str:
    """Only the top-level imports, definitions and assignments of ``code`` (raises SyntaxError).

    Anything else at top level (a call that trains a model, a plot, ``sys.exit()``) is dropped: the
    grader only needs the functions, and must not run the rest of the student's work.
    """
    tree = ast.parse(code)
    kept = [node for node in tree.body if isinstance(node, KEPT)]
    lines = code.splitlines()
    return "\n\n".join("\n".join(lines[_start(node) - 1: node.end_lineno]) for node in kept) + "\n"


def _start(node) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno] + [d.lineno for d in decorators])


def extract(path) -> Dict[str, dict]:
    """A submission's exercise code: ``{exercise id: {"code": str, "error": str | None}}``.

    For a notebook, each cell tagged ``exercise`` separately (cells are self-contained, so a broken cell
    cannot take the others down); for a ``.py`` file, one entry :data:`ALL` with its top-level imports
    and definitions. ``error`` says why some code could not be used (a syntax error), the code is then empty.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"submission {path} does not exist")
    if path.suffix == ".ipynb":
        items = [(ex.id, ex.source) for ex in exercises(read_notebook(path))]
    elif path.suffix == ".py":
        items = [(ALL, path.read_text(encoding="utf-8", errors="replace"))]
    else:
        raise ValueError(f"submission must be a .ipynb notebook or a .py file, got {path.name}")
    out = {}
    for key, code in items:
        try:
            out[key] = {"code": keep_definitions(code), "error": None}
        except SyntaxError as e:
            where = "your exercise cell" if key != ALL else path.name
            out[key] = {"code": "", "error": f"{where} has a syntax error, line {e.lineno}: {e.msg}\n    {(e.text or '').rstrip()}"}
    return out


def code_for(extracted: Dict[str, dict], exercise_id: str) -> dict:
    """The code a test of ``exercise_id`` loads: its own cell, or the whole .py file."""
    if exercise_id in extracted:
        return extracted[exercise_id]
    if ALL in extracted:
        return extracted[ALL]
    return {"code": "", "error": f"the submission has no cell for exercise {exercise_id} "
                                 f"(a code cell tagged 'exercise' with id {exercise_id!r} in its metadata)"}
