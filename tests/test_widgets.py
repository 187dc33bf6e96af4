"""xai_course.widgets: live widgets in a notebook, one static call under the book build."""
from __future__ import annotations

import pytest

from xai_course import widgets


def draw(index=3, mode="signed"):
    return f"{index}-{mode}"


def test_static_under_the_book_build(monkeypatch, capsys):
    monkeypatch.setenv("XAI_COURSE_STATIC", "1")
    assert widgets.building_book()
    assert widgets.interact(draw, index=(0, 10), mode=["signed", "absolute"]) == "3-signed"
    assert "index=3, mode='signed'" in capsys.readouterr().out


def test_live_outside_the_build(monkeypatch):
    monkeypatch.delenv("XAI_COURSE_STATIC", raising=False)
    monkeypatch.setattr(widgets, "BUILDERS", ("no-such-builder",))
    assert not widgets.building_book()
    wrapped = widgets.interact(draw, index=(0, 10), mode=["signed", "absolute"])
    controls = {w.description: w for w in wrapped.widget.children if hasattr(w, "value")}
    assert controls["index"].value == 3 and controls["mode"].value == "signed"


def test_every_control_needs_an_initial_value():
    with pytest.raises(ValueError, match="default"):
        widgets.interact(lambda index: index, index=(0, 10))
