"""Run one grading test in a fresh Python subprocess, with a time limit.

Whatever the submission does (hang, ``sys.exit``, ``os._exit``, a segfault, megabytes of prints,
``torch.set_grad_enabled(False)``, ``torch.set_default_dtype(torch.float64)``) stays in that process:
the grader and the other tests never see it. The result comes back in a JSON file written by
:mod:`~xai_course.grading._runner`; the process's own output is kept (head and tail, a few KB) for the
report, never parsed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

OUTPUT_KEEP = 2000  # characters kept from the start and from the end of a test's output


def _signal_message(rc: int) -> str:
    sig = -rc
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    if sig == getattr(signal, "SIGXFSZ", -1):
        return "the test was stopped: your code printed far too much output"
    if sig == signal.SIGKILL:
        return "the test process was killed (SIGKILL), probably for using too much memory"
    if sig == signal.SIGSEGV:
        return "the test process crashed with a segmentation fault (SIGSEGV)"
    return f"the test process was killed by {name}"


def _read_output(path: Path) -> str:
    size = path.stat().st_size if path.exists() else 0
    with open(path, "rb") as f:
        if size <= 2 * OUTPUT_KEEP:
            return f.read().decode("utf-8", "replace")
        head = f.read(OUTPUT_KEEP).decode("utf-8", "replace")
        f.seek(size - OUTPUT_KEEP)
        tail = f.read().decode("utf-8", "replace")
    return f"{head}\n[... {size - 2 * OUTPUT_KEEP} bytes of output left out ...]\n{tail}"


def run_test(*, code_path: str, code_error, exercise: str, test_file: str, test_name: str,
             params=None, timeout: float = 30.0) -> dict:
    """``{"status": "passed"|"failed"|"forbidden"|"error", "message", "output", "duration"}`` of one test."""
    with tempfile.TemporaryDirectory(prefix="xai-grade-") as tmp:
        tmp = Path(tmp)
        spec = {"code_path": str(code_path), "code_error": code_error, "exercise": exercise,
                "test_file": str(test_file), "test_name": test_name, "params": params or {},
                "result": str(tmp / "result.json")}
        (tmp / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
                   MPLBACKEND="Agg", PYTHONFAULTHANDLER="")
        work = tmp / "work"
        work.mkdir()
        out_path = tmp / "output.txt"
        timed_out = False
        with open(out_path, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "xai_course.grading._runner", str(tmp / "spec.json")],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=work, env=env, start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the process and anything it started
            except (ProcessLookupError, PermissionError):
                pass
            rc = proc.wait()
        result_path = Path(spec["result"])
        if timed_out:
            result = {"status": "failed", "message": f"time limit exceeded: the test did not finish within "
                                                     f"{timeout:g} s (an infinite loop? a very slow implementation?)"}
        elif result_path.exists():
            try:
                result = json.loads(result_path.read_text(encoding="utf-8"))
            except ValueError:
                result = {"status": "failed", "message": "the test's report was corrupted"}
        elif rc < 0:
            result = {"status": "failed", "message": _signal_message(rc)}
        else:
            result = {"status": "failed", "message": f"the test process exited (code {rc}) before the test "
                                                     f"finished: does your code call os._exit() or exit the "
                                                     f"interpreter?"}
        result["output"] = _read_output(out_path)
        if result["status"] == "error" or (not result_path.exists() and not timed_out and rc > 0):
            result["message"] += "\n" + result["output"][-800:]
        return result
