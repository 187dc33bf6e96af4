"""Sphinx extension: the book shows the STUDENT version of every notebook, unless it is an instructor build.

Listed in ``_config.yml`` (``sphinx: extra_extensions``), so the default ``jupyter-book build .`` (what CI
builds and the public reads) never shows a graded solution: on Sphinx's ``source-read`` event, before
myst-nb parses and executes a notebook, its text is replaced by :func:`release.student_version` (solution
blocks replaced by ``raise NotImplementedError``, cells tagged ``solution``/``hidden`` removed), and the
leak check of :func:`release.leaks` runs on it (a leak fails the build). The executed pages therefore
show the stubs, and each check cell prints "not done yet" (see :mod:`xai_course.exercise`).

The instructor build keeps the master notebooks as they are, solutions and answers included:

    XAI_COURSE_SOLUTIONS=1 jupyter-book build . --path-output _build/instructor

Notebooks without exercise markup pass through unchanged.
"""
from __future__ import annotations

import json
import os

from . import markup, release

ENV = "XAI_COURSE_SOLUTIONS"


def instructor_build() -> bool:
    """True when the environment asks for the instructor build (``XAI_COURSE_SOLUTIONS=1``)."""
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


def has_markup(nb: dict) -> bool:
    """Whether a notebook holds anything the student version changes."""
    for cell in nb.get("cells", []):
        if release.REMOVED_TAGS & set(markup.tags(cell)) or "exercise" in markup.tags(cell):
            return True
    return False


def student_text(text: str, name: str = "notebook") -> str:
    """The student version of a notebook's JSON text; raises :class:`release.LeakError` on a leak."""
    nb = json.loads(text)
    if not has_markup(nb):
        return text
    student = release.student_version(nb)
    leaked = release.leaks(nb, student)
    if leaked:
        raise release.LeakError(f"{name}: solution lines leak into the student version:\n  "
                                + "\n  ".join(leaked[:10]))
    return json.dumps(student, indent=1, ensure_ascii=False) + "\n"


def _source_read(app, docname, source):
    if instructor_build():
        return
    path = str(app.env.doc2path(docname))
    if not path.endswith(".ipynb"):
        return
    try:
        source[0] = student_text(source[0], docname)
    except release.LeakError as error:
        from sphinx.errors import ExtensionError
        raise ExtensionError(str(error)) from error


def setup(app):
    app.connect("source-read", _source_read)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
