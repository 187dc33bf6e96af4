"""The untrusted side: a fork server (zygote) and the worker processes that run student code.

The grader forks the zygote right after importing torch, numpy and this module, BEFORE it reads its
configuration or imports any test: the zygote's memory (hence every worker's) holds no test, no expected
value, no reference implementation and no secret path. For each test the grader asks the zygote for a
worker; the worker

1. keeps only its socket to the grader (every other descriptor is closed: it cannot reach the zygote)
   and sends its output to a pipe the grader reads;
2. as root: enters a private mount namespace where the tests, hidden tests, notebooks, submissions,
   the course package and the reference libraries are hidden under empty read-only mounts and /tmp is
   its own, then becomes an unprivileged user of its own (``uid = 60000 + slot``), with no way back
   (``PR_SET_NO_NEW_PRIVS``) and a process limit;
3. installs an audit hook (defence in depth, and the only filter without root) that refuses imports of
   the reference libraries, of the course package and of the modules the exercise's grading tests
   forbid (their mark's ``forbid``, e.g. scipy in lab 16's rank correlation), reading files outside the
   Python installation (or inside those libraries or the course package), opening folders outside its
   working folder and relative paths that climb with ``..`` (``os.open``'s event does not carry its
   ``dir_fd``), writing outside its working folder, symlinks, starting processes, signals to other
   processes, ctypes, sockets and gc introspection;
4. loads the student's code and answers calls: ``{"name", "args", "kwargs"}`` in, the return value as
   plain data out (see :mod:`~xai_course.grading.protocol`).
"""
from __future__ import annotations

import ctypes
import errno
import importlib.util
import linecache
import os
import signal
import socket
import stat
import sys
import sysconfig
import time
import traceback
import types

import numpy as np
import torch

from xai_course import models as _models  # noqa: F401 - the builders' classes, loaded before any sandbox

from . import builders, protocol

FORBIDDEN = ("captum", "zennit", "shap", "lime", "quantus", "pytorch_grad_cam", "saliency")
STUDENT_FILE = "<your code>"
MAX_TEXT = 3000
MAX_MEMORY = 4 * 2**30
MAX_FILE = 64 * 2**20

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 4096, 0x4000, 1 << 18
_libc = ctypes.CDLL(None, use_errno=True)


def prctl(option: int, value: int) -> bool:
    return _libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) == 0


def package_dir(name: str):
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if locations:
        return os.path.realpath(locations[0])
    return os.path.realpath(spec.origin) if spec.origin and os.path.isabs(spec.origin) else None


def _editable_dirs():
    """Where editable installs (setuptools' ``__editable__*finder`` modules) map these packages: another
    checkout of the course may be importable that way even when this one comes first on sys.path."""
    dirs = []
    for name, module in list(sys.modules.items()):
        mapping = getattr(module, "MAPPING", None) if name.startswith("__editable__") else None
        if isinstance(mapping, dict):
            dirs += [os.path.realpath(str(path)) for top, path in mapping.items()
                     if top in FORBIDDEN or top == "xai_course"]
    return dirs


# Computed once, in the zygote: where the reference libraries and the course package are.
FORBIDDEN_DIRS = tuple(sorted({d for d in [package_dir(n) for n in FORBIDDEN + ("xai_course",)] + _editable_dirs()
                               if d}))


def _python_dirs():
    dirs = set()
    for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            try:
                dirs.add(os.path.realpath(sysconfig.get_path(key, vars=scheme_vars or None)))
            except (KeyError, TypeError):
                pass
    for p in sys.path:
        if p and ("site-packages" in p or "dist-packages" in p or p.endswith(".zip")):
            dirs.add(os.path.realpath(p))
    return tuple(sorted(dirs)) + ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/share", "/usr/local/lib",
                                  "/etc", "/dev/null", "/dev/urandom", "/dev/random", "/sys/devices/system/cpu",
                                  "/sys/fs/cgroup", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat")


READ_DIRS = _python_dirs()


# --- the zygote --------------------------------------------------------------------------------------------
def zygote(ctrl: socket.socket) -> None:
    """Serve ``spawn`` and ``reap`` requests from the grader until it closes the socket; never returns."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of the workers come back here, to be killed
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import gc

    gc.collect()
    gc.freeze()  # the garbage collector leaves the inherited objects alone: fewer copy-on-write pages per worker
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(ctrl, 1 << 16, 4)
        except OSError:
            os._exit(0)
        if not data:
            os._exit(0)
        request = __import__("json").loads(data)
        if request["op"] == "spawn":
            pid = os.fork()
            if pid == 0:
                try:
                    ctrl.close()
                    worker_main(fds[0], fds[1], request)
                finally:
                    os._exit(70)
            for fd in fds:
                os.close(fd)
            reply = {"pid": pid}
        else:  # reap: the grader killed the worker (and its processes); collect every dead child
            status, deadline = None, time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    pid, code = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == request["pid"]:
                    status = code
                if pid == 0:
                    if status is not None:
                        break
                    time.sleep(0.005)
            reply = {"status": status}
        ctrl.send(__import__("json").dumps(reply).encode())


# --- the worker: sandbox ---------------------------------------------------------------------------------
def _mount(source, target, fstype, flags, data):
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}: {os.strerror(ctypes.get_errno())}")


def _cover(target: str, options: str, keep) -> None:
    """Mount an empty tmpfs (``options``) on ``target`` and bind the paths ``keep`` (under it) back into it."""
    fds = {path: os.open(path, os.O_PATH) for path in keep}
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)
    for path, fd in fds.items():
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            open(path, "w").close()
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        os.close(fd)


def _reach_python() -> None:
    """Python installed under a folder other users cannot enter (``/root/.pyenv``): in the worker's mount
    namespace, cover that folder with an empty tmpfs and bind the Python installation back into it."""
    blocked = {}
    for d in READ_DIRS:
        if not d.startswith("/") or not os.path.exists(d) or d.startswith(("/proc", "/sys", "/dev")):
            continue
        parts = d.strip("/").split("/")
        for k in range(1, len(parts)):
            ancestor = "/" + "/".join(parts[:k])
            if not os.stat(ancestor).st_mode & 0o001:
                blocked.setdefault(ancestor, set()).add(ancestor + "/" + parts[k])
                break
    for ancestor, keep in blocked.items():
        _cover(ancestor, "size=4k,mode=0755", keep)


def _private_tmp() -> None:
    """An empty /tmp, /var/tmp and /dev/shm for the worker. Python and the course package may live under
    one of them (a checkout with its virtual environment in /tmp): those folders are bound back into
    the empty one, where the audit hook governs them as anywhere else (Python's readable, the course's
    not); nothing else of the old /tmp is visible."""
    covers = [os.path.realpath(p) for p in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(p)]
    wanted = sorted({d for d in READ_DIRS + FORBIDDEN_DIRS if d.startswith("/") and os.path.exists(d)
                     and any(d.startswith(c + "/") for c in covers)})
    keep = [d for i, d in enumerate(wanted) if not any(d.startswith(e + "/") for e in wanted[:i])]  # outermost
    for cover in covers:
        _cover(cover, "size=512m,mode=1777", [d for d in keep if d.startswith(cover + "/")])


def enter_root_sandbox(request: dict) -> None:
    """As root: private mounts hiding ``request["hide"]``, a private /tmp, then an unprivileged uid."""
    if request.get("namespace"):
        if _libc.unshare(CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
        # (not the modules an exercise forbids: hidden, their import would fail unseen; the guard refuses
        # it and records the attempt, which costs the exercise its credit in both sandboxes alike)
        for path in request.get("hide", []):
            if os.path.isdir(path):
                _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555")
            elif os.path.exists(path):
                _mount("/dev/null", path, None, MS_BIND, None)
        _private_tmp()
        _reach_python()
    uid = int(request["uid"])
    import resource

    resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    os.chdir("/tmp" if request.get("namespace") else "/")


def _limits() -> None:
    import resource

    try:
        with open("/proc/self/status", encoding="ascii") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (size + MAX_MEMORY, size + MAX_MEMORY))
    except (OSError, ValueError, StopIteration):
        pass
    for limit, value in ((resource.RLIMIT_FSIZE, MAX_FILE), (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass


def _module_files(names) -> tuple:
    """Where the modules ``names`` live: a package's folder, or a single-file module and its compiled
    caches (``__pycache__/name.*.pyc`` sits beside it, outside its path). ``importlib.import_module``
    raises no "import" audit event, so refusing to read these files is what stops it."""
    found = []
    for name in names:
        where = package_dir(name)
        if not where:
            continue
        found.append(where)
        if where.endswith(".py"):
            for level in ("", 1, 2):
                try:
                    found.append(os.path.realpath(importlib.util.cache_from_source(where, optimization=level)))
                except (NotImplementedError, ValueError):
                    pass
    return tuple(found)


def make_guard(write_dir, tripped: list, hidden=(), forbid=()):
    """The audit hook. Everything it uses is bound here (C functions, tuples, a list): patching modules
    later changes nothing, and audit hooks cannot be removed. ``hidden``: the folders the sandbox hid
    (tests, notebooks, submissions...); reading them is refused as an attempt even where the private
    /tmp would only answer "no such file" (a checkout under /tmp). ``forbid``: more top-level modules
    this exercise may not import (its mark's ``forbid``), refused like the reference libraries and
    their folders unreadable; :func:`worker_main` has dropped them from ``sys.modules`` first, since
    an import that ``sys.modules`` answers raises no audit event."""
    lstat, readlink, fspath, getpid, S_ISLNK = os.lstat, os.readlink, os.fspath, os.getpid, stat.S_ISLNK
    getcwd, len_, hasattr_, type_ = os.getcwd, len, hasattr, type
    import pathlib

    path_types = (pathlib.PosixPath, pathlib.PurePosixPath)
    isinstance_, str_, bytes_, int_, tuple_ = isinstance, str, bytes, int, tuple
    hidden = tuple(p for p in hidden if not (write_dir == p or (write_dir or "").startswith(p.rstrip("/") + "/")))
    forbid = tuple(forbid)
    extra_dirs = _module_files(forbid)
    deny_dirs, read_dirs, forbidden = FORBIDDEN_DIRS + hidden + extra_dirs, READ_DIRS, FORBIDDEN + forbid
    write_dirs = (write_dir,) if write_dir else ()
    append, PermissionError_, ImportError_ = tripped.append, PermissionError, ImportError
    proc_self = f"/proc/{getpid()}"
    writes = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000  # O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND
    folder_flags = os.O_DIRECTORY | getattr(os, "O_PATH", 0)
    stat_, S_ISDIR = os.stat, stat.S_ISDIR

    def is_dir(path):
        try:
            return S_ISDIR(stat_(path).st_mode)
        except (OSError, ValueError):
            return False

    def resolve(path):
        if isinstance_(path, int_):
            return None
        kind = type_(path)
        if kind is not str_ and kind is not bytes_ and kind not in path_types:
            return "/<a path-like object of an unknown type>"  # its __fspath__ could answer differently twice
        path = fspath(path)
        if isinstance_(path, bytes_):
            path = path.decode("utf-8", "surrogateescape")
        if not path.startswith("/"):
            if ".." in path.split("/"):   # a dir_fd (which the audit event does not carry) could re-base it
                return "/<a relative path that climbs out with ..>"
            path = "/".join((getcwd(), path))
        parts, done, hops = path.split("/"), [], 0
        while parts:
            part = parts.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            current = "/" + "/".join(done + [part])
            try:
                is_link = S_ISLNK(lstat(current).st_mode)
            except OSError:
                is_link = False
            if is_link and hops < 40:
                hops += 1
                target = readlink(current)
                if target.startswith("/"):
                    done = []
                parts = target.split("/") + parts
                continue
            done.append(part)
        return "/" + "/".join(done)

    def under(path, dirs):
        for d in dirs:
            if path == d or path.startswith(d + "/" if d != "/" else "/"):
                return True
        return False

    def readable(path):
        if path.startswith("/proc/self") or path == proc_self or path.startswith(proc_self + "/"):
            return True
        return not under(path, deny_dirs) and (under(path, read_dirs) or under(path, write_dirs))

    def deny(what, record=True):
        if record:
            append(what)
        raise PermissionError_(f"not allowed while grading: {what}")

    def hook(event, args):
        if event == "open":
            path = resolve(args[0])
            if path is None:
                return
            mode, flags = args[1], args[2]
            wants_write = isinstance_(flags, int_) and flags & writes
            if isinstance_(mode, str_):
                for c in "wax+":
                    if c in mode:
                        wants_write = True
            # a folder's descriptor, given as dir_fd, would re-base relative paths past these checks
            if not under(path, write_dirs) and ((isinstance_(flags, int_) and flags & folder_flags) or is_dir(path)):
                deny(f"opening the folder {path}")
            if wants_write:
                if not under(path, write_dirs):
                    deny(f"writing {path}", False)
            elif not readable(path):
                deny(f"reading {path}")
        elif event == "import":
            name, where = args[0], (args[1] if len_(args) > 1 else None)
            if isinstance_(name, str_):
                top = name.split(".")[0]
                if top in forbidden or top == "xai_course" or top in ("_posixsubprocess", "_ctypes") or (
                        isinstance_(where, str_) and under(resolve(where), deny_dirs)):   # an extension's file
                    append(f"import {name}")
                    raise ImportError_(f"importing {name} is not allowed in an exercise: implement it yourself")
        elif event in ("os.listdir", "os.scandir"):
            path = resolve(args[0]) if args and args[0] is not None else None
            if path is not None and not readable(path):
                deny(f"listing {path}")
        elif event == "os.symlink":   # a link's target is relative to its folder, not to the cwd: none at all
            deny(event, False)
        elif event in ("os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.link", "os.chmod",
                       "os.chown", "os.truncate", "os.utime", "os.chflags", "os.lchflags", "os.mkfifo", "os.mknod"):
            for a in args[:2]:
                if isinstance_(a, (str_, bytes_)) or hasattr_(a, "__fspath__"):
                    path = resolve(a)
                    if not under(path, write_dirs):
                        deny(f"{event} on {path}", False)
        elif event in ("os.kill", "os.killpg", "signal.pthread_kill"):
            if not (event == "os.kill" and args[0] == getpid()):
                deny(f"{event}", False)
        elif event in ("os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system",
                       "subprocess.Popen", "pty.spawn", "os.startfile", "resource.setrlimit", "resource.prlimit",
                       "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.remote_exec",
                       "sqlite3.connect", "sqlite3.connect/handle", "os.add_dll_directory", "syslog.openlog",
                       "mmap.__new__", "os.setuid", "os.setgid") or event.startswith(("ctypes.", "socket.")):
            deny(event, False)
        elif event == "object.__setattr__" and len_(args) >= 2 and args[1] == "__code__":
            deny(f"setting {args[1]}", False)

    return hook


# --- the worker: student code -----------------------------------------------------------------------------
def safe_text(obj, limit: int = MAX_TEXT) -> str:
    """str(obj), whatever its __str__ does (raises, returns a non-string, returns megabytes), capped."""
    try:
        text = str.__str__(obj) if type(obj) is str else obj.__str__()
        if type(text) is not str:
            raise TypeError
    except BaseException:  # noqa: BLE001
        try:
            return f"<{type(obj).__name__} whose message cannot be printed>"[:limit]
        except BaseException:  # noqa: BLE001
            return "<an object whose message cannot be printed>"
    return text if len(text) <= limit else text[: limit - 40] + f" [... {len(text) - limit + 40} characters cut]"


BUILTIN_ERRORS = {e.__name__: e for e in (
    ValueError, TypeError, NotImplementedError, AssertionError, KeyError, IndexError, RuntimeError,
    ZeroDivisionError, AttributeError, NameError, ImportError, ModuleNotFoundError, MemoryError, OverflowError,
    RecursionError, ArithmeticError, LookupError, OSError, PermissionError, SystemExit, KeyboardInterrupt,
    StopIteration, UnboundLocalError)}


def describe(error: BaseException) -> dict:
    kind = "Exception"
    for cls in type(error).__mro__:
        if BUILTIN_ERRORS.get(getattr(cls, "__name__", None)) is cls:
            kind = cls.__name__
            break
    try:
        frames = traceback.StackSummary.extract(traceback.walk_tb(error.__traceback__), lookup_lines=False)
        frames = [f for f in frames if f.filename == STUDENT_FILE][-5:]
        where = "".join(traceback.format_list(frames)).replace(f'File "{STUDENT_FILE}"', "your code")
    except BaseException:  # noqa: BLE001
        where = ""
    try:
        name = type(error).__name__
        name = name if type(name) is str else kind
    except BaseException:  # noqa: BLE001
        name = kind
    code = None
    if kind == "SystemExit":
        code = safe_text(getattr(error, "code", None), 200)
    errno_ = getattr(error, "errno", None) if kind in ("OSError", "PermissionError") else None
    return {"kind": kind, "type": name[:100], "message": safe_text(error), "where": where[-MAX_TEXT:],
            "code": code, "errno": errno_ if type(errno_) is int else None}


def load_code(code: str) -> tuple:
    """Execute the student's code statement by statement: ``(module, [problems])``."""
    import ast

    module = types.ModuleType("submission")
    module.__file__ = STUDENT_FILE
    sys.modules["submission"] = module
    linecache.cache[STUDENT_FILE] = (len(code), None, code.splitlines(True), STUDENT_FILE)
    problems = []
    try:
        body = ast.parse(code).body if code.strip() else []
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        return module, [f"your code could not be read: {safe_text(e)}"]
    for node in body:
        try:
            exec(compile(ast.Module([node], []), STUDENT_FILE, "exec"), module.__dict__)
        except BaseException as e:  # noqa: BLE001 - a SystemExit while loading must not end the worker
            d = describe(e)
            problems.append(f"(loading your code, line {node.lineno}, failed: {d['where']}{d['type']}: "
                            f"{d['message']})"[:MAX_TEXT])
    return module, problems


def _snapshot(values):
    state = []
    for v in values:
        if isinstance(v, torch.nn.Module):
            state.append((v, {k: t.detach().clone() for k, t in v.state_dict().items()},
                          [m.training for m in v.modules()]))
        elif isinstance(v, torch.Tensor):
            state.append((v, v.detach().clone(), None))
    return state


def _changed(name, state):
    for obj, saved, modes in state:
        if isinstance(obj, torch.nn.Module):
            now = obj.state_dict()
            for key, value in saved.items():
                if key not in now or now[key].shape != value.shape or not torch.equal(now[key].detach(), value):
                    return (f"`{name}` changed the model in place (its {key!r} is different after the call): "
                            f"an explanation must leave the model as it found it")
            if [m.training for m in obj.modules()] != modes:
                return f"`{name}` changed the model's train/eval mode and did not restore it"
        elif obj.shape != saved.shape or not torch.equal(obj.detach(), saved):
            return f"`{name}` changed its input tensor in place: work on a copy"
    return None


def serve(sock: socket.socket, tripped: list) -> None:
    request, _ = protocol.recv(sock)
    module, problems = load_code(request.get("code", ""))
    tripped.clear()  # what loading tried is blocked and reported as a problem; only calls cost credit
    functions = sorted(k for k, v in module.__dict__.items() if callable(v) and not k.startswith("__"))
    protocol.send(sock, {"functions": functions, "problems": problems})
    while True:
        request, blobs = protocol.recv(sock)
        name = request["name"]
        reply, arrays = {}, []
        try:
            args = protocol.decode(request["args"], blobs, builders.decode_module, builders.CALLABLES, grad=True)
            kwargs = protocol.decode(request["kwargs"], blobs, builders.decode_module, builders.CALLABLES, grad=True)
        except Exception as e:  # noqa: BLE001
            protocol.send(sock, {"grader_error": safe_text(e)})
            continue
        before = _snapshot(list(args) + list(kwargs.values()))
        grad, dtype = torch.is_grad_enabled(), torch.get_default_dtype()
        function = module.__dict__.get(name)
        start = time.perf_counter()
        try:
            result, error = function(*args, **kwargs), None
        except BaseException as e:  # noqa: BLE001 - everything the student's code can throw
            result, error = None, e
        seconds = time.perf_counter() - start
        changed_grad, changed_dtype = torch.is_grad_enabled() != grad, torch.get_default_dtype() != dtype
        torch.set_grad_enabled(grad)
        torch.set_default_dtype(dtype)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        reply["seconds"] = seconds
        if error is not None:
            reply["error"] = describe(error)
        elif changed_grad:
            reply["violation"] = (f"`{name}` switched gradients off globally (torch.set_grad_enabled(False)) and "
                                  f"left them off: use `with torch.no_grad():` or leave the global state as it was")
        elif changed_dtype:
            reply["violation"] = f"`{name}` changed torch's default dtype and left it changed: leave global state alone"
        else:
            try:
                reply["violation"] = _changed(name, before)
                reply["result"] = protocol.encode(result, arrays, builders.encode_module)
            except BaseException as e:  # noqa: BLE001
                arrays = []
                reply.pop("result", None)
                reply["bad_result"] = (f"`{name}` returned a value that cannot be graded "
                                       f"({safe_text(e, 300)}): return tensors, numbers, or tuples/lists of them")
        reply["forbidden"] = [safe_text(t, 300) for t in tripped[:5]]
        protocol.send(sock, reply, arrays)


def cache_own_source() -> None:
    """Put the source of the grading modules loaded here into ``linecache``, never to be re-read.

    Code that formats the call stack (``torch.manual_seed`` does, for CUDA's lazy seeding; so does any
    ``traceback`` call) reads the source line of every frame, and the worker's own frames are in files
    the sandbox hides and the guard forbids: without this an honest submission that seeds torch would
    lose its credit for "reading the grader's files". These modules are public (the pip package); the
    tests and expected values never reach the worker. ``mtime`` None: ``linecache.checkcache`` keeps
    the entries without looking at the files again.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and os.path.dirname(os.path.abspath(path)) == here and path.endswith(".py"):
            lines = linecache.getlines(path)
            if lines:
                linecache.cache[path] = (sum(map(len, lines)), None, lines, path)


def worker_main(sock_fd: int, out_fd: int, request: dict) -> None:
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    cache_own_source()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    keep = {0, 1, 2, sock_fd}
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    sock = socket.socket(fileno=sock_fd)
    try:
        if request.get("uid") is not None:
            enter_root_sandbox(request)
        write_dir = "/tmp" if request.get("uid") is not None and request.get("namespace") else \
            os.path.realpath(request["workdir"])
        os.chdir(write_dir)
        os.environ["TMPDIR"] = write_dir
        import tempfile

        tempfile.tempdir = write_dir
        _limits()
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_DUMPABLE, 0)
    except BaseException as e:  # noqa: BLE001 - the sandbox could not be set up: refuse to run student code
        protocol.send(sock, {"sandbox_error": safe_text(e)})
        os._exit(71)
    torch.set_num_threads(1)
    sys.modules.pop("_posixsubprocess", None)
    if "subprocess" in sys.modules:
        sys.modules["subprocess"]._posixsubprocess = None
    sys.path[:] = [p for p in sys.path if p and any(
        os.path.realpath(p) == d or os.path.realpath(p).startswith(d + "/") for d in READ_DIRS)
        and not any(os.path.realpath(p).startswith(d) for d in FORBIDDEN_DIRS)]
    sys.path_importer_cache.clear()
    forbid = tuple(m for m in request.get("forbid") or [] if isinstance(m, str) and m.isidentifier())
    for name in [n for n in sys.modules if n.split(".")[0] in forbid]:  # imported already: import it afresh
        del sys.modules[name]
    tripped: list = []
    sys.addaudithook(make_guard(write_dir, tripped, tuple(request.get("hide", [])), forbid))
    protocol.send(sock, {"ready": True})
    try:
        serve(sock, tripped)
    except (protocol.Closed, protocol.ProtocolError, TimeoutError):
        pass
    os._exit(0)


__all__ = ["zygote", "worker_main", "FORBIDDEN", "FORBIDDEN_DIRS", "np"]
