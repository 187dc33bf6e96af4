"""Command line.

- ``xai-course-grade SUBMISSION... --chapter 01 [--hidden DIR] [--results results.json]``: one student
  (several files are one submission: each exercise from the first file that has it);
- ``xai-course-grade-class FOLDER --chapter 01 --out DIR [--jobs N]``: a class (every ``.ipynb``/``.py``
  file or sub-folder of FOLDER is one student): ``DIR/<student>/results.json`` and ``DIR/scores.csv``;
- ``python -m xai_course.grading release [--out DIR]``: the student notebooks.

The chapters graded come from ``--chapter`` or ``--assignment FILE`` (JSON: ``{"chapters": ["01"],
"hidden": [...], "timeout": 30}``), never from the submission; without either, every chapter of the
tests is graded. This process only checks the options: it then ``exec``\\ s the grader
(:mod:`~xai_course.grading.grader`) with the configuration in an anonymous file, so no path of the
configuration is on any command line. Exit status: 0 when every test passed, 1 otherwise, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

PUBLIC = Path(__file__).resolve().parent / "public"


def _common(parser):
    parser.add_argument("--chapter", action="append", default=[], help="a chapter to grade (e.g. 01); repeatable")
    parser.add_argument("--assignment", default=None, help="JSON file: {\"chapters\": [...], \"hidden\": [...]}")
    parser.add_argument("--hidden", action="append", default=[], metavar="DIR", help="a folder of hidden tests")
    parser.add_argument("--tests", action="append", default=None, metavar="DIR",
                        help="test folders to use instead of the public tests")
    parser.add_argument("--timeout", type=float, default=None, help="time limit of each call, seconds (30)")
    parser.add_argument("--sandbox", choices=["auto", "user"], default="auto",
                        help="'user': do not use root's isolation even when running as root (for tests)")


def _config(args) -> dict:
    assignment = {}
    if args.assignment:
        assignment = json.loads(Path(args.assignment).read_text(encoding="utf-8"))
        if not isinstance(assignment, dict):
            raise ValueError("the assignment file must hold a JSON object")
    chapters = list(args.chapter) + list(assignment.get("chapters", []))
    for c in chapters:
        if not re.fullmatch(r"\d{1,2}", str(c)):
            raise ValueError(f"--chapter must be a chapter number like 01, got {c!r}")
    tests = [str(Path(t).resolve()) for t in (args.tests or assignment.get("tests") or [PUBLIC])]
    hidden = [str(Path(h).resolve()) for h in list(args.hidden) + list(assignment.get("hidden", []))]
    for folder in tests + hidden:
        if not Path(folder).exists():
            raise ValueError(f"no such test folder: {folder}")
    timeout = args.timeout or float(assignment.get("timeout", 30.0))
    return {"chapters": [f"{int(c):02d}" for c in chapters], "tests": tests, "hidden": hidden, "timeout": timeout}


def _exec(config: dict, jobs: int, sandbox: str) -> int:
    fd = os.memfd_create("xai-grading-config", 0)
    os.write(fd, json.dumps(config).encode("utf-8"))
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-P", "-m", "xai_course.grading.grader", "--jobs", str(jobs),
                              "--config-fd", str(fd), "--sandbox", sandbox])
    return 2  # not reached


def _parse(parser: argparse.ArgumentParser, argv) -> tuple:
    """The command's arguments (with the options every command shares) and its grading configuration;
    a bad configuration ends the command with the parser's usage error."""
    _common(parser)
    args = parser.parse_args(argv)
    try:
        return args, _config(args)
    except (ValueError, OSError) as e:
        parser.error(str(e))


def grade(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="xai-course-grade", description="Grade one student's notebook(s) or .py file.")
    parser.add_argument("submission", nargs="+", help="the student's .ipynb notebook(s) or .py file")
    parser.add_argument("--results", default="results.json", help="where to write Gradescope's results.json")
    args, config = _parse(parser, argv)
    paths = [str(Path(p).absolute()) for p in args.submission]
    config.update(students=[{"name": Path(paths[0]).name, "paths": paths, "results": str(Path(args.results).absolute())}],
                  results=str(Path(args.results).absolute()), print_summary=True)
    return _exec(config, 1, args.sandbox)


def _student_name(path: Path, seen: set) -> str:
    stem = path.stem if path.suffix in (".ipynb", ".py") and not path.is_dir() else path.name
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:80] or "submission"
    base, k = name, 2
    while name in seen:
        name, k = f"{base}-{k}", k + 1
    seen.add(name)
    return name


def grade_class(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="xai-course-grade-class",
                                     description="Grade a folder of submissions (one file or sub-folder per student).")
    parser.add_argument("folder", help="the class's submissions: NAME.ipynb / NAME.py files or NAME/ folders")
    parser.add_argument("--out", required=True, help="where to write NAME/results.json and scores.csv")
    parser.add_argument("--csv", default=None, help="the CSV of scores per exercise (default OUT/scores.csv)")
    parser.add_argument("--jobs", type=int, default=0, help="students graded at once (default: the number of CPUs)")
    args, config = _parse(parser, argv)
    folder, out = Path(args.folder).absolute(), Path(args.out).absolute()
    if not folder.is_dir():
        parser.error(f"{folder} is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    students, seen = [], set()
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            paths = sorted(str(p) for p in entry.iterdir() if p.suffix in (".ipynb", ".py"))
        elif entry.suffix in (".ipynb", ".py"):
            paths = [str(entry)]
        else:
            continue
        name = _student_name(entry, seen)
        students.append({"name": name, "paths": paths, "results": str(out / name / "results.json")})
    if not students:
        parser.error(f"no submissions (.ipynb, .py or folders) in {folder}")
    config.update(students=students, out=str(out), csv=str(Path(args.csv).absolute() if args.csv else out / "scores.csv"),
                  progress=True)
    return _exec(config, args.jobs or os.cpu_count() or 1, args.sandbox)


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
    """``xai-course-grade``: grading; ``release`` or ``class`` as first argument for the other commands."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "release":
        return release(argv[1:])
    if argv and argv[0] == "class":
        return grade_class(argv[1:])
    if argv and argv[0] == "publish":           # the public course tree (xai_course/grading/publish.py)
        from .publish import main as publish

        return publish(argv[1:])
    if argv and argv[0] == "grade":
        argv = argv[1:]
    return grade(argv)


if __name__ == "__main__":
    sys.exit(main())
