"""Command line: ``xai-course-grade SUBMISSION [--hidden DIR] [--results results.json]`` and
``python -m xai_course.grading release [--out DIR]`` / ``python -m xai_course.grading grade ...``.

Grading runs pytest with the plugin on the public tests (and the instructor's hidden tests), so the
exit status is pytest's: 0 when every test passed, 1 when some failed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

PUBLIC = Path(__file__).resolve().parent / "public"


def grade(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="xai-course-grade", description="Grade a student's notebook or .py file.")
    parser.add_argument("submission", help="the student's .ipynb notebook or .py file")
    parser.add_argument("--hidden", action="append", default=[], metavar="DIR",
                        help="a folder of hidden tests (same format as the public ones); repeatable")
    parser.add_argument("--tests", action="append", default=None, metavar="DIR",
                        help="test folders to use instead of the public tests")
    parser.add_argument("--chapter", action="append", default=[], help="grade only this chapter (e.g. 01); "
                        "default: the chapters of the notebook's exercises, or of a NN_name.py file name")
    parser.add_argument("--results", default=None, help="write Gradescope's results.json here")
    parser.add_argument("--timeout", type=float, default=30.0, help="time limit per test, seconds (30)")
    parser.add_argument("--jobs", type=int, default=0, help="tests run at once (default: number of CPUs)")
    parser.add_argument("-k", default=None, help="only the tests matching this pytest expression")
    parser.add_argument("-v", "--verbose", action="store_true", help="pytest's full failure report too")
    args = parser.parse_args(argv)
    import pytest

    tests = [str(Path(t).resolve()) for t in (args.tests or [PUBLIC])] + [str(Path(h).resolve()) for h in args.hidden]
    options = ["-p", "xai_course.grading.plugin", "--submission", str(Path(args.submission).resolve()),
               "--grading-timeout", str(args.timeout), "--grading-jobs", str(args.jobs),
               "--import-mode=importlib", "-p", "no:cacheprovider", "-o", "addopts=", "-o", "timeout=0",
               "--rootdir", str(Path(tests[0]).parent)]
    options += ["-q", "-rN", "--tb=no"] if not args.verbose else ["-v"]
    if args.results:
        options += ["--results", str(Path(args.results).resolve())]
    for chapter in args.chapter:
        options += ["--chapter", chapter]
    if args.k:
        options += ["-k", args.k]
    return int(pytest.main(options + tests))


def release(argv=None) -> int:
    from .release import LeakError, release as write

    parser = argparse.ArgumentParser(prog="python -m xai_course.grading release",
                                     description="Write the student notebooks (solutions stripped).")
    here = Path(__file__).resolve().parents[2]  # the repository root of a source checkout
    root = Path.cwd() if (Path.cwd() / "notebooks").is_dir() or not (here / "notebooks").is_dir() else here
    parser.add_argument("--notebooks", default=str(root / "notebooks"), help="instructor notebooks (notebooks/)")
    parser.add_argument("--out", default=str(root / "student"), help="where to write them (student/)")
    args = parser.parse_args(argv)
    try:
        written = write(args.notebooks, args.out)
    except (LeakError, FileNotFoundError, ValueError) as e:
        print(f"release failed: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    """Entry point of ``xai-course-grade``: grading (``release`` as first argument releases)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "release":
        return release(argv[1:])
    if argv and argv[0] == "publish":           # the public course tree (xai_course/grading/publish.py)
        from .publish import main as publish

        return publish(argv[1:])
    if argv and argv[0] == "grade":
        argv = argv[1:]
    return grade(argv)


if __name__ == "__main__":
    sys.exit(main())
