"""Helpers for the chapter notebooks: numbers glued into the prose, tables that render as tables.

- :func:`glue` stores a computed value under a name, for ``{glue:text}`name:.2f``` in the prose
  (myst-nb's ``glue``); in Colab or plain Jupyter, where myst-nb is not installed, it does nothing.
- :func:`table` shows rows as a real table (HTML in the book and in Jupyter), never a wide printed line.
"""
from __future__ import annotations

from numbers import Integral, Real
from typing import Optional, Sequence


def glue(name: str, value, display: bool = False):
    """Glue ``value`` under ``name`` for the book's prose; returns ``value`` so a cell can also use it."""
    try:
        from myst_nb import glue as _glue
    except ImportError:  # Colab / plain Jupyter: nothing to glue into
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # tensors and numpy scalars
        value = value.item()
    _glue(name, value, display=display)
    return value


def _cell(value, digits: int) -> str:
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, Integral):
        return f"{value:,}"
    if isinstance(value, Real):
        v = float(value)
        return f"{v:.{digits}g}" if v != 0 and (abs(v) < 10 ** -(digits - 1) or abs(v) >= 10 ** 6) \
            else f"{v:.{digits}f}"
    return str(value).replace("|", "\\|")


def _is_number(value) -> bool:
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    return isinstance(value, Real) and not isinstance(value, bool)


def table(rows: Sequence[Sequence], columns: Sequence[str], digits: int = 3, caption: Optional[str] = None):
    """Display ``rows`` under ``columns`` as a Markdown table (a real table in the book and in Jupyter).

    Floats get ``digits`` decimals (``digits`` significant digits below 10^-(digits-1), scientific
    notation when tinier or huge), ints thousands separators; number columns are right-aligned.
    Returns the Markdown text (end the cell with ``;`` so it is not shown twice).
    """
    for i, row in enumerate(rows):
        if len(row) != len(columns):
            raise ValueError(f"row {i} has {len(row)} cells, expected {len(columns)} (one per column)")
    lines = []
    if caption:
        lines += [f"**{caption}**", ""]
    lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in columns) + " |")
    # numbers right-aligned (digits line up), anything else left-aligned
    lines.append("|" + "|".join("--:" if rows and all(_is_number(row[i]) for row in rows) else ":--"
                                for i in range(len(columns))) + "|")
    lines += ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in rows]
    text = "\n".join(lines)
    try:
        from IPython.display import Markdown, display
        display(Markdown(text))
    except ImportError:  # no IPython: print it
        print(text)
    return text
