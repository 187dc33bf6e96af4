"""Write the student version of every chapter notebook and check that no solution leaks into it.

``python -m xai_course.grading release [--out DIR] [--notebooks DIR]`` (default: ``notebooks/`` -> ``student/``
at the repository root). In each notebook: exercise cells get their solution blocks replaced by
``raise NotImplementedError("Exercise N.K")``; cells tagged ``solution`` or ``hidden`` are removed; all
outputs and execution counts are stripped; everything else (the ``check`` cells included: they raise
``NotImplementedError`` for the student until the exercise is done) is unchanged.

Leak check: every non-blank line of every solution block (and of every removed cell) must be absent
from the student notebook (one longer than ``PASTED`` characters also inside a longer line), unless it is
a line of the package's methods, which the chapters print. The other exception is a short, generic line (at
most ``GENERIC`` characters, e.g. ``with torch.no_grad():`` or ``return out``) that the instructor
notebook also uses outside the solutions: such a line gives nothing away. A solution pasted elsewhere
(a hint in markdown, a demo cell, a printed output) is caught.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import List

from . import markup

REMOVED_TAGS = {"solution", "hidden"}
GENERIC = 30  # characters: a solution line this short that is also used outside the solutions is no leak
PASTED = 50   # characters: a solution line this long is a leak also inside a longer line (a hint's sentence)
PACKAGE = Path(__file__).resolve().parents[1]   # xai_course/: its methods are public (the chapters print them)


class LeakError(RuntimeError):
    """A solution line is still in a student notebook."""


def student_version(nb: dict) -> dict:
    """The student notebook for an instructor notebook (both as the dicts stored on disk)."""
    nb = copy.deepcopy(nb)
    exercise_ids = {ex.index: ex for ex in markup.exercises(nb)}
    cells = []
    for i, cell in enumerate(nb.get("cells", [])):
        if REMOVED_TAGS & set(markup.tags(cell)):
            continue
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            if i in exercise_ids:
                stub = markup.strip_solutions(markup.source(cell), exercise_ids[i].number)
                cell["source"] = stub.splitlines(keepends=True)
        cells.append(cell)
    nb["cells"] = cells
    return nb


def leaks(instructor: dict, student: dict) -> List[str]:
    """Solution lines of ``instructor`` that appear in ``student`` (short generic lines excepted).

    A line longer than :data:`GENERIC` counts wherever it appears, also inside a longer line (pasted into
    a hint's sentence, a comment, an output); a short one only as a whole line that is not public.
    """
    solution, public = set(), set()
    for cell in instructor.get("cells", []):
        code = markup.source(cell)
        lines = markup.solution_lines(code)
        solution.update(lines)
        if REMOVED_TAGS & set(markup.tags(cell)):
            solution.update(l.strip() for l in code.splitlines() if l.strip())
            continue
        public.update(l.strip() for l in markup.strip_solutions(code, "?").splitlines() if l.strip())
    package = package_lines(PACKAGE)
    texts = [markup.source(cell) for cell in student.get("cells", [])]
    texts += [_output_text(out) for cell in student.get("cells", [])
              for out in cell.get("outputs", [])]
    blob = "\n".join(texts)
    whole = {l.strip() for text in texts for l in text.splitlines()}
    found = []
    for line in solution:
        if line in package:
            continue                                  # a line of the package's own methods
        if line in whole and (len(line) > GENERIC or line not in public) or len(line) > PASTED and line in blob:
            found.append(line)
    return sorted(found)


def package_lines(package: Path) -> set:
    """The lines of the package's methods (``xai_course/`` outside ``grading/``): public, the chapters print
    them. An exercise asks for a method of its chapter without the package, so a solution line may well be
    one of the package's lines (``x = inputs.detach().requires_grad_(True)``); that reveals nothing."""
    lines = set()
    for path in Path(package).rglob("*.py") if Path(package).is_dir() else []:
        if "grading" not in path.relative_to(package).parts:
            lines.update(l.strip() for l in path.read_text(encoding="utf-8", errors="replace").splitlines())
    lines.discard("")
    return lines


def _output_text(output: dict) -> str:
    """The text of a notebook output (stream, result or error), whatever its storage."""
    parts = []
    for value in [output.get("text")] + list(output.get("data", {}).values()) + [output.get("traceback")]:
        if isinstance(value, list):
            parts.append("".join(v if isinstance(v, str) else "" for v in value))
        elif isinstance(value, str):
            parts.append(value)
    return "\n".join(parts)


def release(notebooks="notebooks", out="student") -> List[Path]:
    """Write the student notebooks of ``notebooks/NN_*.ipynb`` into ``out``; raises LeakError on a leak."""
    notebooks, out = Path(notebooks), Path(out)
    paths = sorted(notebooks.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no chapter notebooks (NN_*.ipynb) in {notebooks}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        instructor = markup.read_notebook(path)
        student = student_version(instructor)
        leaked = leaks(instructor, student)
        if leaked:
            raise LeakError(f"{path.name}: solution lines leak into the student version:\n  "
                            + "\n  ".join(leaked[:10]))
        target = out / path.name
        target.write_text(json.dumps(student, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written
