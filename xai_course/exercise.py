"""The check cells of the chapter notebooks: ``with check("01.2"): ...``.

A check cell tests the student's function on cases whose answers are known by hand or by a property
(shape, completeness, invariance); it never holds the solution and never calls the package function that
solves the exercise. In the student version the exercise raises ``NotImplementedError`` until it is done:
the check then says so and the notebook runs on (the book is built from the student versions). Any other
failure (a wrong answer) is raised, so an instructor notebook whose solution is wrong fails its build.
"""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def check(exercise: str):
    """Run the checks of exercise ``exercise`` (e.g. ``"01.2"``); say whether they passed."""
    chapter, _, number = exercise.partition(".")
    name = f"{int(chapter)}.{number}" if chapter.isdigit() and number else exercise  # "05.1" -> "5.1"
    try:
        yield
    except NotImplementedError:
        print(f"Exercise {name}: not done yet (the function is still the stub)")
        return
    print(f"Exercise {name}: all checks passed")
