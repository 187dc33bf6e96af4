"""Write the PUBLIC course tree from the instructor's private master repository, and leak-check it.

``python -m xai_course.grading publish OUT`` (or ``python -m xai_course.grading.publish OUT``), run in the
master repository, writes into ``OUT`` (an empty or new folder; the public repository's working tree):

- every file git tracks in the master, except the instructor-only ones (:data:`INSTRUCTOR_ONLY`: the
  grading tests, whose references are solutions, and the repository's own test suite, which checks the
  master notebooks' solutions);
- in place of each chapter notebook ``notebooks/NN_*.ipynb``, at the same path, its student version
  (:func:`release.student_version`: solutions replaced by ``raise NotImplementedError``, cells tagged
  ``solution`` or ``hidden`` removed, outputs stripped), so the Colab button and the links of the book
  built from the public tree open the student notebooks.

Then every text file of ``OUT`` is checked: no line of a solution (solution blocks, ``solution``/``hidden``
cells) of any master notebook may appear in it, except a line of the package's methods (outside
``xai_course/grading``: the chapters print them) and a short generic line (``release.GENERIC`` characters,
``continue``, ``return out``) in a code file, or in a notebook or page when the master notebooks also use
it outside their solutions. A leak raises :class:`release.LeakError`: nothing may be
pushed then.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Set

from . import markup, release

# Paths (fnmatch patterns, relative to the repository root) that stay in the private master.
INSTRUCTOR_ONLY = (
    "xai_course/grading/public/test_*.py",   # grading tests: their _reference_* helpers are solutions
    "tests/*",                               # the test suite checks the master notebooks' solutions
    "hidden*/*", "*/hidden*/*",              # hidden grading tests, wherever the instructor keeps them
    "student/*",                             # output of `release`
    "instructor/*",                          # a place for private notes, by convention
)
CHAPTER = "notebooks/[0-9][0-9]_*.ipynb"
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".txt", ".yml", ".yaml", ".toml", ".cfg", ".json", ".rst", ".bib",
                 ".html", ".js", ".css", ".sh", ""}


def tracked_files(root: Path) -> List[str]:
    """The files of the master: ``git ls-files`` in a git checkout, else every file under ``root``."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True)
        files = [f for f in out.stdout.decode().split("\0") if f]
        if files:
            return sorted(f for f in files if (root / f).is_file())
    except (OSError, subprocess.CalledProcessError):
        pass
    skip = {".git", "_build", "__pycache__", ".venv", ".venv-ci", ".pytest_cache", ".hypothesis"}
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and not skip & set(p.relative_to(root).parts))


def instructor_only(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in INSTRUCTOR_ONLY)


def secret_lines(notebooks: Iterable[dict]) -> Set[str]:
    """Every non-blank line (stripped) of the solution blocks and of the solution/hidden cells."""
    lines: Set[str] = set()
    for nb in notebooks:
        for cell in nb.get("cells", []):
            code = markup.source(cell)
            lines.update(markup.solution_lines(code))
            if release.REMOVED_TAGS & set(markup.tags(cell)):
                lines.update(l.strip() for l in code.splitlines() if l.strip())
    return lines


def notebook_lines(notebooks: Iterable[dict]) -> Set[str]:
    """The master notebooks' lines outside their solutions (public, but a solution could be pasted there)."""
    lines: Set[str] = set()
    for nb in notebooks:
        for cell in nb.get("cells", []):
            if release.REMOVED_TAGS & set(markup.tags(cell)):
                continue
            code = markup.strip_solutions(markup.source(cell), "?")
            lines.update(l.strip() for l in code.splitlines() if l.strip())
    return lines


def _text_lines(path: Path) -> Set[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = {l.strip() for l in text.splitlines()}
    if path.suffix == ".ipynb":                 # the JSON escapes newlines: look inside the cells too
        try:
            nb = json.loads(text)
            for cell in nb.get("cells", []):
                lines.update(l.strip() for l in markup.source(cell).splitlines())
        except ValueError:
            pass
    return lines


def leak_check(out, masters: Dict[str, dict]) -> List[str]:
    """``"file: line"`` for every secret line found in a text file of ``out``."""
    out = Path(out)
    secret = secret_lines(masters.values())
    public, package = notebook_lines(masters.values()), release.package_lines(out / "xai_course")
    found = []
    for path in sorted(p for p in out.rglob("*") if p.is_file() and ".git" not in p.parts):
        if path.suffix not in TEXT_SUFFIXES or path.stat().st_size > 5_000_000:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        whole = _text_lines(path)
        if path.suffix == ".ipynb":           # the cells' text, unescaped, besides the JSON itself
            text += "\n" + "\n".join(sorted(whole))
        for line in sorted(secret):
            if line in package:
                continue                      # public anyway: the chapters print the package
            if len(line) > release.GENERIC:       # a long line: as a line, or pasted into a longer one
                hit = line in whole or len(line) > release.PASTED and line in text
            else:                             # a short generic line counts only where it could be pasted
                hit = line in whole and path.suffix in (".ipynb", ".md") and line not in public
            if hit:
                found.append(f"{path.relative_to(out).as_posix()}: {line}")
    return found


def publish(out, root=".") -> List[Path]:
    """Write the public course tree of the master repository ``root`` into ``out``; returns the files."""
    root, out = Path(root).resolve(), Path(out).resolve()
    if out == root or out in root.parents:
        raise ValueError(f"the public tree {out} must be a folder of its own, not the master {root} or above it")
    if out.exists() and any(p.name != ".git" for p in out.iterdir()):
        raise ValueError(f"{out} is not empty (keep only its .git folder: the public tree is rewritten whole)")
    files = tracked_files(root)
    if not any(fnmatch.fnmatch(f, CHAPTER) for f in files):
        raise FileNotFoundError(f"no chapter notebooks ({CHAPTER}) in {root}")
    masters, written = {}, []
    for name in files:
        if instructor_only(name):
            continue
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if fnmatch.fnmatch(name, CHAPTER):
            nb = markup.read_notebook(root / name)
            masters[name] = nb
            student = release.student_version(nb)
            target.write_text(json.dumps(student, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        else:
            shutil.copy2(root / name, target)
        written.append(target)
    leaked = leak_check(out, masters)
    if leaked:
        raise release.LeakError("solution lines in the public tree (nothing may be pushed):\n  "
                                + "\n  ".join(leaked[:20]))
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xai_course.grading publish",
                                     description="Write the public course tree (student notebooks, no "
                                                 "instructor-only files) and leak-check it.")
    parser.add_argument("out", help="an empty folder (or one holding only .git): the public repository")
    parser.add_argument("--root", default=".", help="the master repository (default: the current folder)")
    args = parser.parse_args(argv)
    try:
        written = publish(args.out, args.root)
    except (release.LeakError, FileNotFoundError, ValueError) as e:
        print(f"publish failed: {e}", file=sys.stderr)
        return 1
    notebooks = sum(1 for p in written if p.suffix == ".ipynb")
    print(f"wrote {len(written)} files ({notebooks} notebooks as student versions) to {Path(args.out).resolve()}; "
          "no solution found in them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
