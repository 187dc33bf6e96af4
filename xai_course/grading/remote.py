"""The grader's handle on the worker processes: zygotes, workers, calls, and killing what they leave.

Trusted side. A :class:`Slot` owns one zygote (forked before any secret was loaded, see
:mod:`~xai_course.grading.worker`) and, as root, one unprivileged uid. A :class:`Context` is one test's
view of the student: it starts a worker from the slot's zygote, loads the exercise's code into it,
sends calls and validates the answers; :meth:`Context.close` kills the worker and every process it left.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time

from . import builders, protocol

OUTPUT_KEEP = 2000           # characters kept from the start and from the end of a test's output
MAX_OUTPUT = 32 * 2**20      # bytes of output before the worker is stopped
BASE_UID = 2_000_000  # worker uids: BASE_UID + 64 * (grader pid % 10**6) + slot, unique per running grader
BUILTIN = {e.__name__: e for e in (
    ValueError, TypeError, NotImplementedError, AssertionError, KeyError, IndexError, RuntimeError,
    ZeroDivisionError, AttributeError, NameError, ImportError, ModuleNotFoundError, OverflowError,
    RecursionError, ArithmeticError, LookupError, OSError, PermissionError, StopIteration, UnboundLocalError)}


class CallFailed(AssertionError):
    """The call could not complete (time limit, crash, unreadable answer): the test fails with this message."""


class Forbidden(AssertionError):
    """The student's code reached a reference implementation."""


class StudentError(Exception):
    """An exception raised by the student's function, rebuilt in the grader (same builtin type)."""

    kind = "Exception"

    def __init__(self, info: dict):
        self.info = info
        super().__init__(self.describe())

    def describe(self) -> str:
        i = self.info
        if self.kind == "NotImplementedError":
            return f"not implemented yet (your code raised NotImplementedError: {i['message']})"
        return f"your code raised an error:\n{i['where']}{i['type']}: {i['message']}".rstrip()

    def __str__(self):
        return self.describe()


_ERRORS = {}


def student_error(info: dict) -> BaseException:
    kind = info.get("kind") if isinstance(info.get("kind"), str) else "Exception"
    text = lambda k: info.get(k) if isinstance(info.get(k), str) else ""  # noqa: E731
    info = {"kind": kind, "type": text("type")[:100] or kind, "message": text("message")[:3000],
            "where": text("where")[-3000:], "code": text("code")[:200]}
    if kind == "SystemExit":
        return CallFailed(f"your code called sys.exit({info['code']}) (or exit()): return a value instead")
    if kind == "MemoryError" or "can't allocate memory" in info["message"] or "DefaultCPUAllocator" in info["message"]:
        return CallFailed("your code used too much memory (more than 4 GB): the test was stopped")
    if kind not in _ERRORS:
        bases = (StudentError, BUILTIN[kind]) if kind in BUILTIN else (StudentError,)
        _ERRORS[kind] = type(f"Student{kind}", bases, {"kind": kind, "__str__": StudentError.__str__,
                                                       "__init__": StudentError.__init__})
    return _ERRORS[kind](info)


def _signal_message(status) -> str:
    if status is None:
        return "the worker running your code stopped unexpectedly"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGSEGV:
            return "your code crashed the process with a segmentation fault (SIGSEGV)"
        if sig == signal.SIGKILL:
            return "the process running your code was killed (SIGKILL), probably for using too much memory"
        if sig == getattr(signal, "SIGXFSZ", -1):
            return "the test was stopped: your code wrote far too much"
        try:
            return f"the process running your code was killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"the process running your code was killed by signal {sig}"
    return (f"the process running your code exited (code {os.WEXITSTATUS(status)}) before returning: "
            f"does your code call os._exit() or exit the interpreter?")


# --- processes ----------------------------------------------------------------------------------------------
def _processes():
    """{pid: (ppid, state, uid)} of every process (zombies included, marked 'Z')."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                rest = f.read().rsplit(b")", 1)[1].split()
            uid = os.stat(f"/proc/{name}").st_uid
        except (OSError, IndexError):
            continue
        table[int(name)] = (int(rest[1]), rest[0].decode(), uid)
    return table


def kill_all(root_pid: int, uid=None, keep=()) -> int:
    """SIGKILL every descendant of ``root_pid`` (and, as root, every process of ``uid``) until none is left.

    Sessions and process groups do not matter: the zygote is a child subreaper, so whatever a worker
    starts stays its descendant (or becomes the zygote's child) until it is killed."""
    killed = 0
    for round_ in range(200):
        table = _processes()
        children = {}
        for pid, (ppid, state, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        victims, todo = set(), list(children.get(root_pid, []))
        while todo:
            pid = todo.pop()
            if pid not in victims:
                victims.add(pid)
                todo.extend(children.get(pid, []))
        if uid is not None:
            victims.update(pid for pid, (_, _, u) in table.items() if u == uid)
        victims = {p for p in victims if table.get(p, (0, "Z"))[1] != "Z" and p not in keep}
        if not victims:
            return killed
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.001 * min(round_, 20))
    return killed


class Slot:
    """One zygote (and, as root, one uid): the worker factory of one student at a time."""

    def __init__(self, index: int, mode: dict):
        self.index, self.mode = index, mode
        self.uid = BASE_UID + 64 * (os.getpid() % 10**6) + index if mode["root"] else None
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # the zygote: nothing secret has been loaded yet in this process
            try:
                parent.close()
                for fd in map(int, os.listdir("/proc/self/fd")):
                    if fd not in (0, 1, 2, child.fileno()):
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                from .worker import zygote

                zygote(child)
            finally:
                os._exit(0)
        child.close()
        self.ctrl, self.pid = parent, pid
        self.hide = []
        self.tmp = None

    def request(self, message: dict, fds=()):
        socket.send_fds(self.ctrl, [json.dumps(message).encode()], list(fds))
        self.ctrl.settimeout(30)
        return json.loads(self.ctrl.recv(1 << 16))

    def spawn(self, sock_fd: int, out_fd: int, forbid=()) -> tuple:
        workdir = None
        if not (self.uid is not None and self.mode.get("namespace")):  # else the worker gets a private /tmp
            if self.tmp is None:
                self.tmp = tempfile.mkdtemp(prefix="xai-grading-")
                if self.uid is not None:
                    os.chmod(self.tmp, 0o711)
            workdir = tempfile.mkdtemp(dir=self.tmp)
            if self.uid is not None:
                os.chown(workdir, self.uid, self.uid)
        message = {"op": "spawn", "uid": self.uid, "namespace": self.mode.get("namespace", False),
                   "hide": self.hide if self.uid is not None else [], "workdir": workdir, "forbid": list(forbid)}
        return self.request(message, [sock_fd, out_fd])["pid"], workdir

    def cleanup(self, pid: int, workdir) -> object:
        kill_all(self.pid, self.uid)
        status = self.request({"op": "reap", "pid": pid}).get("status")
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        return status


class Capture(threading.Thread):
    """Reads a worker's output pipe; keeps the first and last characters; stops the worker past MAX_OUTPUT."""

    def __init__(self, fd: int, on_flood):
        super().__init__(daemon=True)
        self.fd, self.on_flood = fd, on_flood
        self.head, self.tail, self.size, self.flooded = bytearray(), bytearray(), 0, False
        self.start()

    def run(self):
        with os.fdopen(self.fd, "rb", buffering=0) as f:
            while True:
                chunk = f.read(1 << 16)
                if not chunk:
                    return
                self.size += len(chunk)
                room = OUTPUT_KEEP * 4 - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                self.tail = (self.tail + chunk)[-OUTPUT_KEEP * 4:]
                if self.size > MAX_OUTPUT and not self.flooded:
                    self.flooded = True
                    self.on_flood()

    def take(self) -> str:
        """The output since the last take (the worker may serve several tests)."""
        import fcntl
        import termios

        for _ in range(100):  # let the thread read what the worker flushed before it answered
            try:
                pending = int.from_bytes(fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"), "little")
            except OSError:
                break
            if not pending:
                break
            time.sleep(0.002)
        text = self.text()
        self.head, self.tail, self.size = bytearray(), bytearray(), 0
        return text

    def text(self) -> str:
        head = self.head.decode("utf-8", "replace")[:OUTPUT_KEEP]
        if self.size <= len(self.head):
            return head if len(head) < OUTPUT_KEEP else head + "\n[... output cut ...]"
        tail = self.tail.decode("utf-8", "replace")[-OUTPUT_KEEP:]
        return f"{head}\n[... {max(self.size - 2 * OUTPUT_KEEP, 0)} bytes of output left out ...]\n{tail}"


# --- one test's view of the student ------------------------------------------------------------------------
class Context:
    def __init__(self, slot: Slot, code: str, timeout: float, forbid=()):
        self.slot, self.code, self.timeout, self.forbid = slot, code, timeout, tuple(forbid)
        self.sock = self.pid = self.capture = None
        self.functions, self.problems, self.failure, self.outputs = None, [], None, []
        self.forbidden, self.status, self.workdir = [], None, None

    def _kill(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def start(self):
        if self.functions is not None or self.failure:
            return
        ours, theirs = socket.socketpair()
        r, w = os.pipe()
        try:
            self.pid, self.workdir = self.slot.spawn(theirs.fileno(), w, self.forbid)
        finally:
            theirs.close()
            os.close(w)
        self.sock = ours
        self.capture = Capture(r, self._kill)
        deadline = time.monotonic() + max(self.timeout, 10)
        reply = self._recv(deadline, "starting")
        if "ready" not in reply:
            self.failure = f"grader error: the sandbox could not be set up ({str(reply.get('sandbox_error'))[:300]})"
            raise CallFailed(self.failure)
        protocol.send(self.sock, {"code": self.code})
        reply = self._recv(time.monotonic() + self.timeout, "loading your code")
        functions, problems = reply.get("functions"), reply.get("problems")
        if not isinstance(functions, list) or not isinstance(problems, list):
            self._fail("the worker's answer could not be read")
        self.functions = {f for f in functions if isinstance(f, str)}
        self.problems = [str(p)[:3000] for p in problems[:10] if isinstance(p, str)]

    def _fail(self, message: str):
        self.failure = message
        self._kill()
        raise CallFailed(message)

    def _recv(self, deadline, what: str, blobs=False):
        try:
            tree, arrays = protocol.recv(self.sock, deadline)
        except TimeoutError:
            self._fail(f"time limit exceeded: {what} did not finish within {self.timeout:g} s "
                       f"(an infinite loop? a very slow implementation?)")
        except protocol.Closed:
            self.close()
            if self.capture is not None and self.capture.flooded:
                self._fail(f"your code printed far too much output (over {MAX_OUTPUT // 2**20} MB): the test was stopped")
            self._fail(_signal_message(self.status))
        except protocol.ProtocolError as e:
            self._fail(f"the answer of your code could not be read ({e})")
        if not isinstance(tree, dict):
            self._fail("the answer of your code could not be read")
        return (tree, arrays) if blobs else tree

    def call(self, name: str, args, kwargs, timeout=None):
        self.start()
        if self.failure:
            raise CallFailed(self.failure)
        arrays = []
        try:
            tree_args = protocol.encode(list(args), arrays, builders.encode_module, builders.CALLABLES)
            tree_kwargs = protocol.encode(dict(kwargs), arrays, builders.encode_module, builders.CALLABLES)
        except TypeError as e:
            raise RuntimeError(f"grading test error: an argument of {name}() cannot be sent to the worker: {e}") from None
        limit = self.timeout if timeout is None else timeout
        try:
            protocol.send(self.sock, {"name": name, "args": tree_args, "kwargs": tree_kwargs}, arrays)
        except OSError:
            self._recv(time.monotonic() + 1, f"`{name}`")  # reports the crash
        saved, self.timeout = self.timeout, limit
        try:
            reply, blobs = self._recv(time.monotonic() + limit, f"`{name}`", blobs=True)
        finally:
            self.timeout = saved
        forbidden = reply.get("forbidden")
        if isinstance(forbidden, list) and forbidden:
            self.forbidden += sorted((str(f)[:300] for f in forbidden[:5]), key=lambda f: not f.startswith("import"))
            raise Forbidden(f"no credit: the exercise uses a reference implementation or the grader's files "
                            f"({'; '.join(dict.fromkeys(self.forbidden))}); it must be implemented from scratch")
        if isinstance(reply.get("error"), dict):
            raise student_error(reply["error"])
        for key in ("violation", "bad_result", "grader_error"):
            if isinstance(reply.get(key), str):
                raise CallFailed(reply[key][:3000])
        if "result" not in reply:
            self._fail("the answer of your code could not be read")
        try:
            return protocol.decode(reply["result"], blobs,
                                   lambda t, a: builders.decode_module(t, a, trusted_recipes=False))
        except (protocol.ProtocolError, ValueError, TypeError, RuntimeError) as e:
            raise CallFailed(f"`{name}` returned a value that cannot be graded ({str(e)[:300]})") from None

    def close(self):
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.status = self.slot.cleanup(pid, self.workdir)
        if self.sock is not None:
            self.sock.close()
        if self.capture is not None:
            self.capture.join(5)
            self.outputs.append(self.capture.take())

    def take_output(self) -> str:
        """What the student's code printed during this test."""
        if self.pid is not None and self.capture is not None:
            self.outputs.append(self.capture.take())
        text = "\n".join(o for o in self.outputs if o.strip())
        self.outputs = []
        return text
