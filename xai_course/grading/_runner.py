"""What runs inside the sandbox subprocess: ONE test on ONE submission, reported as JSON in a file.

``python -m xai_course.grading._runner SPEC.json``. The spec names the exercise code to load, the test
file and function, and where to write the result. The student's stdout/stderr go to a file the parent
reads (never parsed); the result goes to ``spec["result"]``. The process ends with ``os._exit`` so that
nothing the submission registered (atexit handlers, threads) runs after the report.

Order: import the test module (trusted; it may import reference implementations), then block the
reference libraries for code that comes from the submission, then load the submission statement by
statement (a failing import does not hide the functions defined after it), then call the test.
"""
from __future__ import annotations

import builtins
import errno
import importlib
import inspect
import json
import os
import sys
import time
import traceback
import types

from .forbidden import forbidden_module

MAX_MESSAGE = 3000
MAX_OUTPUT_FILE = 32 * 2**20  # bytes of stdout/stderr before writing fails (the test is then stopped)
MAX_MEMORY = 4 * 2**30  # bytes of memory the test may allocate on top of what torch and the test module use


def limit_memory():
    """Cap the address space at its current size plus MAX_MEMORY (after torch is imported: its import
    alone reserves a few GB of address space). Past it, allocations raise MemoryError / RuntimeError."""
    try:
        import resource

        with open("/proc/self/status", encoding="ascii") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (size + MAX_MEMORY, size + MAX_MEMORY))
    except (ImportError, OSError, ValueError, StopIteration):
        pass  # not Linux: no memory limit


class ForbiddenImport(ImportError):
    pass


class MissingFunction(AssertionError):
    pass


class Guard:
    """Makes the reference libraries unimportable for code that comes from the submission's file."""

    def __init__(self, filename: str):
        self.filename = filename
        self.tripped = []
        self._import = builtins.__import__
        self._import_module = importlib.import_module

    def from_submission(self) -> bool:
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename == self.filename:
                return True
            frame = frame.f_back
        return False

    def check(self, names):
        for name in names:
            hit = forbidden_module(name)
            if hit and self.from_submission():
                self.tripped.append(name)
                raise ForbiddenImport(f"importing {name} is not allowed in an exercise: implement the method "
                                      f"yourself instead of calling {hit}")

    def install(self):
        guard = self

        def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
            if level == 0:
                guard.check([name] + [f"{name}.{f}" for f in (fromlist or ()) if isinstance(f, str)])
            return guard._import(name, globals, locals, fromlist, level)

        def guarded_import_module(name, package=None):
            guard.check([name])
            return guard._import_module(name, package)

        builtins.__import__ = guarded_import
        importlib.import_module = guarded_import_module
        xai = sys.modules.get("xai_course")
        if xai is not None and "attribution" in vars(xai):
            delattr(xai, "attribution")  # `import xai_course; xai_course.attribution...` must not work


class Submission(types.ModuleType):
    """The student's exercise code as a module; a missing function gives a clear failure."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        problems = "".join(f"\n{p}" for p in self.__dict__.get("_problems", []))
        raise MissingFunction(f"the submission defines no function `{name}` for exercise "
                              f"{self.__dict__.get('_exercise')}{problems}")


def student_traceback(exc: BaseException, filename: str) -> str:
    """The exception, with only the frames of the submission's code (the grader's frames are noise)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    for f in frames:
        f.filename = "your code"
    lines = traceback.format_list(frames[-5:]) if frames else []
    return "".join(lines) + "".join(traceback.format_exception_only(type(exc), exc)).strip()


def load(spec: dict) -> Submission:
    module = Submission("submission")
    module.__file__ = spec["code_path"]
    module._exercise = spec["exercise"]
    module._problems = [spec["code_error"]] if spec.get("code_error") else []
    sys.modules["submission"] = module
    with open(spec["code_path"], encoding="utf-8") as f:
        code = f.read()
    import ast

    for node in ast.parse(code).body if code.strip() else []:
        try:
            exec(compile(ast.Module([node], []), spec["code_path"], "exec"), module.__dict__)
        except BaseException as e:  # noqa: BLE001 - a SystemExit at import must not end the test either
            module._problems.append(f"(loading your code, line {node.lineno}, failed: "
                                    f"{student_traceback(e, spec['code_path'])})")
    return module


def run(spec: dict) -> dict:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    try:
        name = f"grading_test_{abs(hash(spec['test_file']))}"
        loader = importlib.util.spec_from_file_location(name, spec["test_file"])
        tests = importlib.util.module_from_spec(loader)
        sys.modules[name] = tests
        loader.loader.exec_module(tests)
        test = getattr(tests, spec["test_name"])
    except BaseException:  # noqa: BLE001
        return {"status": "error", "message": "grader error, could not load the test:\n" + traceback.format_exc()}
    limit_memory()
    guard = Guard(spec["code_path"])
    guard.install()
    submission = load(spec)
    guard.tripped.clear()  # a blocked import while loading is reported with the load problems; only a
    # reference library reached while the test runs costs the exercise its credit
    kwargs = dict(spec.get("params") or {})
    if "submission" in inspect.signature(test).parameters:
        kwargs["submission"] = submission
    try:
        test(**kwargs)
        error = None
    except BaseException as e:  # noqa: BLE001 - everything the student's code can throw
        error = e
    if guard.tripped:
        return {"status": "forbidden", "message": f"no credit: the exercise uses a reference implementation "
                                                  f"({guard.tripped[0]}); it must be implemented from scratch"}
    if error is None:
        return {"status": "passed", "message": ""}
    if isinstance(error, SystemExit):
        message = f"your code called sys.exit({error.code!r}) (or exit()): return a value instead"
    elif isinstance(error, OSError) and error.errno == errno.EFBIG:
        message = f"your code printed far too much output (over {MAX_OUTPUT_FILE // 2**20} MB): the test was stopped"
    elif isinstance(error, MemoryError) or "can't allocate memory" in str(error):
        message = f"your code used too much memory (more than {MAX_MEMORY // 2**30} GB): the test was stopped"
    elif isinstance(error, NotImplementedError):
        message = f"not implemented yet (your code raised NotImplementedError: {error})"
    elif isinstance(error, AssertionError):
        message = str(error) or "assertion failed"
        if not isinstance(error, MissingFunction) and submission._problems:
            message += "".join(f"\n{p}" for p in submission._problems)
    else:
        message = "your code raised an error:\n" + student_traceback(error, spec["code_path"])
        if not any(f.filename == spec["code_path"] for f in traceback.extract_tb(error.__traceback__)):
            message += "\n(raised in the test, not in your code:\n" + "".join(
                traceback.format_exception(type(error), error, error.__traceback__)[-3:]) + ")"
        message += "".join(f"\n{p}" for p in submission._problems)
    return {"status": "failed", "message": message[:MAX_MESSAGE]}


def main(spec_path: str):
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_OUTPUT_FILE, MAX_OUTPUT_FILE))
    except (ImportError, ValueError, OSError):
        pass
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    start = time.perf_counter()
    result = run(spec)
    result["duration"] = time.perf_counter() - start
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    tmp = spec["result"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(tmp, spec["result"])
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
