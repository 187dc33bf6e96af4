"""notebook.table: a pipe in a column title or a cell must not split the Markdown table's columns."""
from xai_course.notebook import table


def test_pipes_in_headers_and_cells_are_escaped():
    text = table([("a|b", 1.5)], ["max |ours - theirs|", "value"])
    header, rule, row = text.splitlines()
    assert header == "| max \\|ours - theirs\\| | value |"
    assert row == "| a\\|b | 1.500 |"
    # every line has the same number of unescaped column separators
    count = [line.replace("\\|", "").count("|") for line in (header, rule, row)]
    assert count == [3, 3, 3]
