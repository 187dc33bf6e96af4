#!/usr/bin/env python3
"""Check the built HTML book: every page of _toc.yml is there, chapters show figures, nothing failed.

    python .ci/check_html.py _build/html [--root REPO]

For every page listed in ``_toc.yml``:

- ``<html dir>/<path>.html`` exists;
- a notebook page (a chapter or lab: ``<path>.ipynb`` in the repository) shows at least one figure,
  an ``<img>`` in a cell output that is an embedded image or a file that exists, and has the Colab
  launch link built from ``_config.yml``'s repository;
- no page holds a Python traceback, and no cell output holds error output: a ``stderr`` or
  ``traceback`` output block (the book treats any stderr as a problem), ``NotImplementedError``, or a
  line starting with ``SomethingError:``; and no page shows a docutils ``system-message``.

Prints one line per page and exits 1 with the list of problems if anything is wrong.
"""
from __future__ import annotations

import argparse
import html
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
        "track", "wbr"}
TRACEBACK = "Traceback (most recent call last)"
ERROR_LINE = re.compile(r"^\s*[A-Za-z_][\w.]*(Error|Exception)\b\s*:", re.MULTILINE)


def toc_files(toc: dict) -> list[str]:
    """Every ``file:`` of a jb-book table of contents, root first, in order."""
    found = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                found.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    return [str(Path(f).with_suffix("")) if Path(f).suffix in (".md", ".ipynb") else f for f in found]


class Page(HTMLParser):
    """Collects what the checks need from one page: output images, output texts, error markers."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, set[str]]] = []
        self.output_images: list[str] = []   # src of <img> inside a cell output
        self.outputs: list[list[str]] = []    # text of each cell output container
        self.stderr: list[list[str]] = []     # text of each stderr / traceback output block
        self.system_messages = 0
        self.links: list[str] = []

    def _inside(self, cls: str) -> bool:
        return any(cls in classes for _, classes in self.stack)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img":
            if self._inside("cell_output"):
                self.output_images.append(attrs.get("src") or "")
            return
        if tag in VOID:
            return
        if "cell_output" in classes:
            self.outputs.append([])
        if "output" in classes and ("stderr" in classes or "traceback" in classes):
            self.stderr.append([])
        if "system-message" in classes:
            self.system_messages += 1
        self.stack.append((tag, classes))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        for i in range(len(self.stack) - 1, -1, -1):  # tolerate unclosed inner tags
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        if self._inside("cell_output") and self.outputs:
            self.outputs[-1].append(data)
        if self.stderr and any(("stderr" in c or "traceback" in c) and "output" in c for _, c in self.stack):
            self.stderr[-1].append(data)


def image_ok(src: str, page: Path) -> bool:
    if src.startswith("data:image/"):
        return len(src) > 100  # an embedded figure, not an empty placeholder
    if not src or urlparse(src).scheme:
        return False  # a remote image is not a figure made by the notebook
    return (page.parent / unquote(src.split("#")[0].split("?")[0])).is_file()


def colab_link(config: dict, path: str) -> str | None:
    repo = (config.get("repository") or {})
    colab = ((config.get("launch_buttons") or {}).get("colab_url") or "").rstrip("/")
    url = (repo.get("url") or "").rstrip("/")
    if not (colab and url):
        return None
    org_repo = "/".join(url.split("/")[-2:])
    book = (repo.get("path_to_book") or "").strip("/")
    book = "" if book in ("", ".") else book + "/"
    return f"{colab}/github/{org_repo}/blob/{repo.get('branch', 'main')}/{book}{path}.ipynb"


def check(html_dir: Path, root: Path) -> int:
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    problems: list[str] = []
    print(f"Checking {html_dir} against {root / '_toc.yml'}")
    for path in toc_files(toc):
        page = html_dir / f"{path}.html"
        is_notebook = (root / f"{path}.ipynb").is_file()
        kind = "notebook" if is_notebook else "page"
        if not page.is_file():
            problems.append(f"{path}: {page} does not exist (was the page built?)")
            print(f"FAIL  {path:40s} {kind}: no HTML page")
            continue
        text = page.read_text(encoding="utf-8", errors="replace")
        parsed = Page()
        parsed.feed(text)
        mine: list[str] = []

        if TRACEBACK in html.unescape(re.sub(r"<[^>]+>", "", text)):
            mine.append(f"a Python traceback ({TRACEBACK!r}) is on the page")
        for block in parsed.stderr:
            snippet = " ".join("".join(block).split())[:200]
            mine.append(f"a cell wrote to stderr or raised: {snippet!r}")
        for output in parsed.outputs:
            out = "".join(output)
            if "NotImplementedError" in out:
                mine.append("a cell output shows NotImplementedError")
            elif TRACEBACK not in out and (m := ERROR_LINE.search(out)):
                line = out[m.start():].strip().splitlines()[0][:200]
                mine.append(f"a cell output shows an error: {line!r}")
        if parsed.system_messages:
            mine.append(f"{parsed.system_messages} docutils system message(s) rendered on the page")

        figures = 0
        if is_notebook:
            figures = sum(image_ok(src, page) for src in parsed.output_images)
            missing = [s[:80] for s in parsed.output_images if not image_ok(s, page)]
            if missing:
                mine.append(f"cell output image(s) missing: {missing}")
            if figures == 0:
                mine.append("no figure: a chapter page must show at least one <img> in its cell outputs")
            link = colab_link(config, path)
            if link and link not in parsed.links:
                mine.append(f"no Colab launch link to {link}")

        detail = f"{figures} figure(s), " if is_notebook else ""
        status = "ok  " if not mine else "FAIL"
        print(f"{status}  {path:40s} {kind}: {detail}{len(parsed.outputs)} output(s), {len(mine)} problem(s)")
        problems += [f"{path}: {p}" for p in mine]

    if problems:
        print(f"\n{len(problems)} problem(s) in the built book:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print("\nAll pages of _toc.yml are built, every notebook page shows figures, no errors found.")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="the built HTML book, e.g. _build/html")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the repository root, where _toc.yml and _config.yml are (default: this script's repo)")
    args = parser.parse_args(argv)
    if not args.html_dir.is_dir():
        print(f"{args.html_dir} is not a directory: build the book first (jupyter-book build .)", file=sys.stderr)
        return 1
    return check(args.html_dir.resolve(), args.root.resolve())


if __name__ == "__main__":
    sys.exit(main())
