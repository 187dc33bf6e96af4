"""The trusted grader process: ``python -P -m xai_course.grading.grader --jobs K --config-fd FD``.

Started by :mod:`~xai_course.grading.cli` through ``exec``, so its command line holds no path (the
configuration comes through an anonymous file), and it makes itself non-dumpable (its memory, environment
and descriptors are not readable through /proc by another process of the same user). In order:

1. import torch, numpy and the worker code, then fork one zygote per job slot: no secret exists yet;
2. read the configuration, import the grading tests (public and hidden) — only this process has them;
3. grade each submission in a child process forked from this one (a student at a time per slot), each
   test in a fresh worker from the slot's zygote; write one ``results.json`` per student, a CSV of the
   scores per exercise, and a summary.
"""
from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import os
import re
import signal
import stat
import sys
import time
from collections import OrderedDict
from pathlib import Path

MAX_SUBMISSION = 20 * 2**20
MAX_MESSAGE = 3000
PUBLIC = Path(__file__).resolve().parent / "public"


# --- reading a submission: whatever is there, never a crash ----------------------------------------------------
class SubmissionError(Exception):
    pass


def read_file(path: Path) -> bytes:
    try:
        st = os.lstat(path)
    except OSError as e:
        raise SubmissionError(f"{path.name}: cannot be read ({e.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise SubmissionError(f"{path.name} is a symbolic link, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise SubmissionError(f"{path.name} is not a regular file (a named pipe? a folder?)")
    if st.st_size > MAX_SUBMISSION:
        raise SubmissionError(f"{path.name} is larger than {MAX_SUBMISSION // 2**20} MB")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SubmissionError(f"{path.name} is not a regular file")
        chunks, size = [], 0
        while size <= MAX_SUBMISSION:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)[:MAX_SUBMISSION]
    finally:
        os.close(fd)


def _cell_source(cell) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        return "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def extract(paths) -> tuple:
    """``({exercise id or ALL: {"code", "error"}}, [notes])`` from the submitted files."""
    from .markup import ALL, keep_definitions

    raw, notes = OrderedDict(), []
    for path in sorted(Path(p) for p in paths):
        try:
            data = read_file(path)
        except (SubmissionError, OSError) as e:
            notes.append(str(e))
            continue
        text = data.decode("utf-8", "replace")
        if path.suffix == ".ipynb":
            try:
                nb = json.loads(text)
            except (ValueError, RecursionError):
                notes.append(f"{path.name} is not a valid notebook (not JSON)")
                continue
            cells = nb.get("cells") if isinstance(nb, dict) else None
            if not isinstance(cells, list):
                notes.append(f"{path.name} is not a valid notebook (no list of cells)")
                continue
            for i, cell in enumerate(cells):
                if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                    continue
                meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
                tags = meta.get("tags") if isinstance(meta.get("tags"), list) else []
                if "exercise" not in tags:
                    continue
                info = meta.get("exercise")
                ex_id = info.get("id") if isinstance(info, dict) else None
                if not isinstance(ex_id, str) or not re.fullmatch(r"\d\d\.\d{1,3}", ex_id):
                    notes.append(f"{path.name}, cell {i}: an exercise cell whose metadata has no valid id "
                                 f"(restore the cell's metadata {{'exercise': {{'id': 'NN.K', ...}}}})")
                    continue
                if ex_id in raw:
                    notes.append(f"{path.name}, cell {i}: a second cell for exercise {ex_id} is ignored")
                    continue
                raw[ex_id] = (_cell_source(cell), "your exercise cell")
        elif path.suffix == ".py":
            if ALL in raw:
                notes.append(f"{path.name}: only the first .py file is graded")
                continue
            raw[ALL] = (text, path.name)
        else:
            notes.append(f"{path.name}: not a .ipynb notebook or a .py file, ignored")
    out = {}
    for key, (code, where) in raw.items():
        try:
            out[key] = {"code": keep_definitions(code), "error": None}
        except SyntaxError as e:
            out[key] = {"code": "", "error": f"{where} has a syntax error, line {e.lineno}: {e.msg}\n"
                                             f"    {(e.text or '').rstrip()[:200]}"}
        except (ValueError, RecursionError, MemoryError) as e:
            out[key] = {"code": "", "error": f"{where} could not be read: {type(e).__name__}"}
    if len(list(paths)) > 1:
        notes.append("several files were submitted: " + ", ".join(sorted(Path(p).name for p in paths)[:10]) +
                     "; each exercise is taken from the first file that has it")
    return out, [n[:500] for n in notes[:20]]


def code_for(extracted, exercise_id: str) -> dict:
    """The code a test of ``exercise_id`` loads (markup.code_for, imported late like the rest of markup)."""
    from .markup import code_for as markup_code_for

    return markup_code_for(extracted, exercise_id)


# --- the tests: collected in this process only --------------------------------------------------------------
class Item:
    def __init__(self, function, name, exercise, points, functions, params, hidden, forbid=()):
        self.function, self.name, self.exercise, self.points = function, name, exercise, points
        self.functions, self.params, self.hidden, self.forbid = functions, params, hidden, tuple(forbid)


def _forbid(mark, where: str) -> tuple:
    """The mark's ``forbid``: top-level module names the exercise may not use (a tuple of str)."""
    forbid = mark.kwargs.get("forbid", ())
    if isinstance(forbid, str):
        forbid = (forbid,)
    if not isinstance(forbid, (tuple, list)) or not all(
            isinstance(m, str) and m.isidentifier() and m not in ("torch", "numpy", "builtins", "sys")
            for m in forbid):
        raise ValueError(f"{where}: forbid must be top-level module names other than torch, numpy, builtins "
                         f"and sys (the worker runs on them), got {forbid!r}")
    return tuple(forbid)


def _marks(fn, name):
    return [m for m in getattr(fn, "pytestmark", []) if getattr(m, "name", None) == name]


def _expand(fn):
    """The parameter sets of ``pytest.mark.parametrize`` marks (plain values): [(id, {name: value})]."""
    combos = [("", {})]
    for mark in reversed(_marks(fn, "parametrize")):
        names, values = mark.args[0], mark.args[1]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        ids = mark.kwargs.get("ids")
        sets = []
        for k, v in enumerate(values):
            v = getattr(v, "values", v) if type(v).__name__ == "ParameterSet" else v
            v = tuple(v) if len(names) > 1 else (v,)
            vid = ids[k] if isinstance(ids, (list, tuple)) else "-".join(str(x) for x in v)
            sets.append((str(vid), dict(zip(names, v))))
        combos = [((a + "-" + b).strip("-"), {**pa, **pb}) for (a, pa), (b, pb) in itertools.product(combos, sets)]
    return combos


def collect(test_dirs, hidden_dirs, chapters):
    import importlib.util

    items = []
    for hidden, folders in ((False, test_dirs), (True, hidden_dirs)):
        for folder in folders:
            folder = Path(folder)
            files = [folder] if folder.is_file() else sorted(folder.glob("test_*.py"))
            for path in files:
                name = f"xai_grading_tests_{len(items)}_{path.stem}"
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
                for attr, fn in vars(module).items():
                    if not attr.startswith("test") or not callable(fn):
                        continue
                    marks = _marks(fn, "exercise")
                    if not marks:
                        continue
                    mark = marks[0]
                    ex = str(mark.args[0] if mark.args else mark.kwargs["id"])
                    if chapters and ex.split(".")[0] not in chapters:
                        continue
                    forbid = _forbid(mark, f"{path.name}::{attr}")
                    for pid, params in _expand(fn):
                        items.append(Item(fn, attr + (f"[{pid}]" if pid else ""), ex, mark.kwargs.get("points", 1),
                                          list(mark.kwargs.get("functions", [])), params, hidden, forbid))
    return items


# --- grading one student (in a child process of the grader) --------------------------------------------------
class Remote:
    """``submission.f`` inside a test: calling it (or ``checks.call(submission.f, ...)``) runs ``f`` remotely."""

    def __init__(self, context, name):
        self.__name__ = name
        self._context = context

    def _xai_remote(self, args, kwargs, time_limit):
        return self._context.call(self.__name__, args, kwargs, time_limit)

    def __call__(self, *args, **kwargs):
        return self._context.call(self.__name__, args, kwargs, None)


class MissingFunction(AssertionError):
    pass


class Submission:
    def __init__(self, context, exercise, code_error):
        self._context, self._exercise, self._code_error = context, exercise, code_error

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        context = self._context
        context.start()
        if name not in context.functions:
            problems = "".join(f"\n{p}" for p in ([self._code_error] if self._code_error else []) + context.problems)
            raise MissingFunction(f"the submission defines no function `{name}` for exercise {self._exercise}"
                                  f"{problems}")
        return Remote(context, name)


def _cap(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 40] + f"\n[... {len(text) - limit + 40} characters cut]"


def safe_str(error) -> str:
    try:
        text = str(error)
    except Exception:  # noqa: BLE001
        text = f"<{type(error).__name__}>"
    return text


def run_item(item, context, code):
    """Run one test against the student's code in ``context``'s worker: ``{"status", "message", "output"}``."""
    from . import checks, remote

    submission = Submission(context, item.exercise, code["error"])
    status, message = "passed", ""
    try:
        checks._seed = None
        item.function(submission=submission, **item.params)
    except remote.Forbidden as e:
        status, message = "forbidden", safe_str(e)
    except (MissingFunction, remote.CallFailed, remote.StudentError) as e:
        status, message = "failed", safe_str(e)
    except AssertionError as e:
        status, message = "failed", safe_str(e) or "assertion failed"
    except Exception as e:  # noqa: BLE001 - the test could not use what the student's code returned
        status, message = "failed", f"the test could not use what your code returned: {type(e).__name__}: {safe_str(e)}"
    if status == "failed" and not isinstance(context.failure, str):
        extra = ([code["error"]] if code["error"] else []) + context.problems
        if extra and "defines no function" not in message:
            message += "".join(f"\n{p}" for p in extra)
    if context.forbidden and status != "forbidden":
        status = "forbidden"
        message = f"no credit: the exercise uses a reference implementation ({context.forbidden[0]})"
    if status != "passed" or context.failure:
        context.close()  # a failed test gets a fresh worker for the next one; all its output is read
    return {"status": status, "message": _cap(message), "output": _cap(context.take_output(), 4 * 2000 + 200)}


def grade_student(paths, items, slot, timeout):
    from . import forbidden, remote

    extracted, notes = extract(paths)
    exercises = OrderedDict()
    for item in items:
        exercises.setdefault(item.exercise, {"points": item.points, "items": [], "functions": set(), "forbid": set()})
        exercises[item.exercise]["items"].append(item)
        exercises[item.exercise]["functions"].update(item.functions)
        exercises[item.exercise]["forbid"].update(item.forbid)  # any test's forbid holds for the whole exercise
    records = []
    for ex_id, entry in sorted(exercises.items()):
        code = code_for(extracted, ex_id)
        reason = None
        try:
            reason = forbidden.find(code["code"], entry["functions"], sorted(entry["forbid"]))
        except (RecursionError, ValueError, MemoryError):
            reason = None
        results, context = [], None
        for item in entry["items"]:
            if reason:
                result = {"status": "forbidden", "output": "",
                          "message": f"no credit: {reason}; the exercise must be implemented from scratch"}
            else:  # one worker per exercise, replaced after any failure (a crash, a time-out, a wrong answer)
                context = context or remote.Context(slot, code["code"], timeout, sorted(entry["forbid"]))
                result = run_item(item, context, code)
                if context.pid is None:
                    context = None
            results.append((item, result))
        if context is not None:
            context.close()
        if any(r["status"] == "forbidden" for _, r in results):
            why = next(r["message"] for _, r in results if r["status"] == "forbidden")
            results = [(i, {**r, "status": "forbidden", "message": why}) for i, r in results]
        share = entry["points"] / len(entry["items"])
        for item, r in results:
            records.append({"exercise": ex_id, "test": item.name, "hidden": item.hidden, "max_score": share,
                            "score": share if r["status"] == "passed" else 0.0, **r})
    return records, notes


def report(name: str, records, notes) -> dict:
    tests, total, maximum = [], 0.0, 0.0
    for r in records:
        total += r["score"]
        maximum += r["max_score"]
        text = "passed" if r["status"] == "passed" else r["message"]
        if r["output"].strip():
            text += "\n--- output ---\n" + r["output"]
        tests.append({"name": f"Exercise {r['exercise']}: {r['test']}", "score": round(r["score"], 4),
                      "max_score": round(r["max_score"], 4), "output": text,
                      "visibility": "after_published" if r["hidden"] else "visible",
                      "status": "passed" if r["status"] == "passed" else "failed"})
    head = f"Graded {name}: {_fmt(total)} / {_fmt(maximum)} points"
    return {"score": round(total, 4), "max_score": round(maximum, 4), "tests": tests, "visibility": "visible",
            "stdout_visibility": "hidden", "output": "\n".join([head] + notes)}


def summary(name: str, records, notes) -> str:
    lines = [f"=== Grading {name} ==="] + [f"note: {n}" for n in notes]
    per = OrderedDict()
    for r in records:
        per.setdefault(r["exercise"], []).append(r)
    total = maximum = 0.0
    for ex_id, rs in per.items():
        score, points = sum(r["score"] for r in rs), sum(r["max_score"] for r in rs)
        total, maximum = total + score, maximum + points
        passed = sum(r["status"] == "passed" for r in rs)
        mark = "PASS" if passed == len(rs) else ("PART" if passed else "FAIL")
        lines.append(f"[{mark}] Exercise {ex_id}: {_fmt(score)} / {_fmt(points)} points "
                     f"({passed} of {len(rs)} tests passed)")
        failures = OrderedDict()
        for r in rs:
            if r["status"] != "passed":
                failures.setdefault(r["message"].strip() or "failed", []).append(
                    "a hidden test" if r["hidden"] else r["test"])
        for message, names in failures.items():
            hidden = names.count("a hidden test")
            names = [n for n in names if n != "a hidden test"] + (
                [f"{hidden} hidden test{'s' if hidden > 1 else ''}"] if hidden else [])
            lines.append(f"    - {', '.join(names)}:")
            lines += [f"        {line}" for line in message.splitlines()[:8]]
    lines.append(f"TOTAL: {_fmt(total)} / {_fmt(maximum)} points")
    return "\n".join(lines)


def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


# --- the main process ----------------------------------------------------------------------------------------
def _probe_namespace() -> bool:
    pid = os.fork()
    if pid == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        os._exit(0 if libc.unshare(0x00020000) == 0 else 1)
    return os.waitpid(pid, 0)[1] == 0


def _hidden_paths(config) -> list:
    from .worker import FORBIDDEN_DIRS

    paths = set(FORBIDDEN_DIRS)
    for key in ("tests", "hidden"):
        paths.update(config.get(key, []))
    for student in config["students"]:
        for p in student["paths"]:
            paths.add(str(Path(p).parent))
    for key in ("out", "results", "csv"):
        if config.get(key):
            paths.add(str(Path(config[key]).parent if key != "out" else Path(config[key])))
    packages = {Path(__file__).resolve().parents[1]} | {Path(d) for d in FORBIDDEN_DIRS if d.endswith("/xai_course")}
    for package in packages:
        root = package.parent
        if (root / "pyproject.toml").exists():  # a source checkout: the notebooks and tests sit next to the package
            paths.update(str(root / d) for d in ("notebooks", "tests", "book", "student", "_build", "benchmarks",
                                                 ".git"))
    return sorted(p for p in (os.path.realpath(p) for p in paths) if os.path.exists(p) and p != "/")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="xai_course.grading.grader")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--config-fd", type=int, required=True)
    parser.add_argument("--sandbox", choices=["auto", "user"], default="auto")
    args = parser.parse_args(argv)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(4, ctypes.c_ulong(0), 0, 0, 0)           # PR_SET_DUMPABLE 0: /proc/<pid>/{mem,environ,fd} closed
    libc.prctl(36, ctypes.c_ulong(1), 0, 0, 0)          # PR_SET_CHILD_SUBREAPER: nothing escapes to init
    import torch

    torch.set_num_threads(1)
    try:  # torch.func imports torch._dynamo on first use: seconds inside a student's call, so import it once here
        import torch._dynamo  # noqa: F401
    except Exception:  # noqa: BLE001
        pass
    from . import remote, worker  # noqa: F401 - the worker code must be in memory before the zygotes fork

    root = os.geteuid() == 0 and args.sandbox == "auto"
    mode = {"root": root, "namespace": root and _probe_namespace()}
    slots = [remote.Slot(i, mode) for i in range(max(1, args.jobs))]
    # --- from here on, secrets: the configuration and the tests ---
    with os.fdopen(args.config_fd, "rb") as f:
        config = json.loads(f.read().decode("utf-8"))
    hide = _hidden_paths(config) if root else []
    for slot in slots:
        slot.hide = hide
    if root and not mode["namespace"]:
        print("warning: running as root without CAP_SYS_ADMIN: workers run as another user, but files readable "
              "by everyone (the reference libraries) are not hidden from them", file=sys.stderr)
    chapters = {f"{int(c):02d}" for c in config.get("chapters") or []}
    try:
        items = collect(config["tests"], config.get("hidden", []), chapters)
    except Exception as e:  # noqa: BLE001 - the instructor's tests do not import: say so, grade nothing
        print(f"grader error: the grading tests could not be loaded: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if not items:
        print(f"grader error: no grading test for chapter(s) {sorted(chapters) or 'any'}", file=sys.stderr)
        return 2
    return run_class(config, items, slots)


def _grade_in_child(student, items, slot, config, w: int) -> None:
    """The body of a student's grading process: grade, write results.json, send a one-line summary."""
    records, notes = grade_student(student["paths"], items, slot, float(config["timeout"]))
    data = report(student["name"], records, notes)
    write_json(Path(student["results"]), data)
    text = summary(student["name"], records, notes)
    if config.get("print_summary"):
        print(text, flush=True)
    per = OrderedDict()
    for r in records:
        per[r["exercise"]] = per.get(r["exercise"], 0.0) + r["score"]
    line = json.dumps({"score": data["score"], "max": data["max_score"], "exercises": per,
                       "passed": all(r["status"] == "passed" for r in records)})
    os.write(w, line.encode()[: 60000] + b"\n")


def _failed_report(student, items, message: str) -> dict:
    records = []
    per_ex = OrderedDict()
    for item in items:
        per_ex.setdefault(item.exercise, []).append(item)
    for ex_id, its in sorted(per_ex.items()):
        for item in its:
            records.append({"exercise": ex_id, "test": item.name, "hidden": item.hidden, "status": "failed",
                            "max_score": item.points / len(its), "score": 0.0, "message": message, "output": ""})
    return report(student["name"], records, [])


def run_class(config, items, slots) -> int:
    from . import remote

    students = list(config["students"])
    timeout = float(config["timeout"])
    budget = float(config.get("student_timeout") or (60 + len(items) * (timeout + 5)))
    free, running, done, results = list(range(len(slots))), {}, 0, {}
    progress = config.get("progress") and sys.stderr.isatty() or config.get("progress") == "always"
    start = time.monotonic()
    import gc

    gc.collect()
    gc.freeze()  # each student's grading process is a fork of this one: fewer copy-on-write pages
    while students or running:
        while students and free:
            slot_index, student = free.pop(0), students.pop(0)
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    os.close(r)
                    _grade_in_child(student, items, slots[slot_index], config, w)
                except BaseException:  # noqa: BLE001
                    code = 3
                finally:
                    os._exit(code)
            os.close(w)
            running[pid] = (slot_index, student, r, time.monotonic())
        time.sleep(0.02)
        for pid, (slot_index, student, r, began) in list(running.items()):
            finished, status = os.waitpid(pid, os.WNOHANG)
            late = not finished and time.monotonic() - began > budget
            if not finished and not late:
                continue
            if late:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            remote.kill_all(slots[slot_index].pid, slots[slot_index].uid)
            with os.fdopen(r, "rb") as f:
                line = f.read(65536)
            try:
                results[student["name"]] = json.loads(line)
            except ValueError:
                why = ("grading this submission took longer than the grader allows" if late else
                       "the grader failed on this submission")
                data = _failed_report(student, items, why)
                write_json(Path(student["results"]), data)
                results[student["name"]] = {"score": 0.0, "max": data["max_score"], "exercises": {}, "passed": False}
                if config.get("print_summary"):
                    print(f"=== Grading {student['name']} ===\n{why}\nTOTAL: 0 / {_fmt(data['max_score'])} points")
            del running[pid]
            free.append(slot_index)
            done += 1
            if progress:
                n = done + len(students) + len(running)
                bar = "#" * int(30 * done / n)
                sys.stderr.write(f"\rgrading [{bar:<30}] {done}/{n} submissions, {time.monotonic() - start:.0f} s")
                sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    if config.get("csv"):
        exercises = sorted({it.exercise for it in items})
        lines = ["student,total,max," + ",".join(exercises)]
        for student in config["students"]:
            r = results.get(student["name"], {})
            row = [student["name"].replace(",", "_"), _fmt(r.get("score", 0.0)), _fmt(r.get("max", 0.0))]
            row += [_fmt(float(r.get("exercises", {}).get(e, 0.0))) for e in exercises]
            lines.append(",".join(row))
        Path(config["csv"]).write_text("\n".join(lines) + "\n", encoding="utf-8")
    for slot in slots:
        slot.ctrl.close()
        if slot.tmp:
            import shutil

            shutil.rmtree(slot.tmp, ignore_errors=True)
        try:
            os.waitpid(slot.pid, 0)
        except ChildProcessError:
            pass
    return 0 if all(r.get("passed") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
