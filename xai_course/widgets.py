"""Interactive exploration for the chapters: one way to make a widget, live in Jupyter and Colab.

``interact(function, **controls)`` is ``ipywidgets.interact`` with its abbreviations for the controls
(``(min, max)`` or ``(min, max, step)`` for a slider, a list for a drop-down, a bool for a check box);
the function's default arguments are the initial values.

While the book is being built there is no reader to move a slider: the HTML page has no kernel, and
executing widgets under the build's notebook client can stall it until the cell time-out
(jupyter/nbclient#312). So under the build no widget is created: the function is drawn once at its
initial values, under a note. Each chapter follows its widget with a static figure over the same
range of settings.
"""
from __future__ import annotations

import inspect
import os
import textwrap
from pathlib import Path

BUILDERS = ("jupyter-book", "jb build", "sphinx-build", "sphinx.cmd.build")


def building_book() -> bool:
    """True when this kernel was started by the book build (or ``XAI_COURSE_STATIC=1`` is set)."""
    if os.environ.get("XAI_COURSE_STATIC") == "1":
        return True
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:  # not Linux, or no /proc: assume a live notebook
        return False
    return any(builder in parent for builder in BUILDERS)


def interact(function, **controls):
    """``ipywidgets.interact(function, **controls)`` live; one static call while the book is built."""
    defaults = {name: p.default for name, p in inspect.signature(function).parameters.items()
                if p.default is not inspect.Parameter.empty}
    missing = sorted(set(controls) - set(defaults))
    if missing:
        raise ValueError(f"every control needs a default argument of {function.__name__} as its initial "
                         f"value; missing for {missing}")
    if building_book():
        settings = ", ".join(f"{name}={defaults[name]!r}" for name in controls)
        print("Interactive widget (live in Jupyter or Colab); the static figure below")
        print("covers the same range. " + textwrap.fill(f"Shown here at {settings}.", 79 - 23,
                                                        subsequent_indent="", break_long_words=False))
        return function(**{name: defaults[name] for name in controls})
    import ipywidgets

    return ipywidgets.interact(function, **controls)
