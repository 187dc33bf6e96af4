"""Plain data between the grader and the worker: length-prefixed JSON plus ``.npy`` arrays, never pickle.

A message is ``(tree, arrays)``: ``tree`` is JSON (objects, lists, strings, numbers) in which every
value that JSON cannot hold is a tagged object ``{"$": kind, ...}``; arrays travel as ``.npy`` bytes
read back with ``numpy.load(allow_pickle=False)``. The grader decodes what the worker sends with
:func:`decode`, which accepts only known tags, real numeric or bool dtypes, bounded sizes and depth, and
builds *new* plain objects (a ``torch.Tensor`` made by the grader from the bytes, never the student's
object). This module is imported by both sides; it holds no secret.
"""
from __future__ import annotations

import io
import json
import math
import socket
import struct
import time

import numpy as np
import torch

MAX_FRAME = 512 * 2**20   # bytes of one message
MAX_HEADER = 8 * 2**20    # bytes of its JSON part
MAX_ARRAYS = 4096
MAX_DEPTH = 24
MAX_ITEMS = 100_000       # elements of one list/tuple/dict
MAX_STRING = 100_000      # characters of one string in a return value
NUMERIC_KINDS = "biuf"    # bool, int, unsigned, float


class ProtocolError(Exception):
    """A message that is not well formed (from a hostile or crashed peer)."""


class Closed(Exception):
    """The peer closed the connection (the worker died)."""


# --- framing ----------------------------------------------------------------------------------------------
def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array(array, order="C", copy=None if array.flags.c_contiguous else True), allow_pickle=False)
    return buf.getvalue()


def send(sock: socket.socket, tree, arrays=()) -> None:
    header = json.dumps(tree, allow_nan=True).encode("utf-8")
    blobs = [_npy(a) for a in arrays]
    parts = [struct.pack("<QI", len(header), len(blobs)), header]
    for blob in blobs:
        parts += [struct.pack("<Q", len(blob)), blob]
    sock.sendall(b"".join(parts))


def _read(sock: socket.socket, n: int, deadline) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
        else:
            sock.settimeout(None)
        try:
            chunk = sock.recv(min(n - got, 1 << 20))
        except socket.timeout:
            raise TimeoutError from None
        except OSError as e:
            raise Closed(str(e)) from None
        if not chunk:
            raise Closed("connection closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket, deadline=None):
    """``(tree, [np.ndarray])``; raises TimeoutError past ``deadline`` (time.monotonic), Closed, ProtocolError."""
    size, count = struct.unpack("<QI", _read(sock, 12, deadline))
    if size > MAX_HEADER or count > MAX_ARRAYS:
        raise ProtocolError("message too large")
    try:
        tree = json.loads(_read(sock, size, deadline).decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"not JSON: {type(e).__name__}") from None
    arrays, total = [], size
    for _ in range(count):
        (n,) = struct.unpack("<Q", _read(sock, 8, deadline))
        total += n
        if total > MAX_FRAME:
            raise ProtocolError(f"message larger than {MAX_FRAME // 2**20} MB")
        arrays.append(_read(sock, n, deadline))
    return tree, arrays


def load_array(blob: bytes) -> np.ndarray:
    """An ``.npy`` blob as a fresh ndarray of a numeric or bool dtype (no pickle, no objects)."""
    try:
        array = np.load(io.BytesIO(blob), allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any malformed blob
        raise ProtocolError(f"malformed array ({type(e).__name__})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in NUMERIC_KINDS or array.dtype.fields:
        raise ProtocolError(f"arrays must have a numeric or bool dtype, got {getattr(array, 'dtype', '?')}")
    return np.array(array, copy=True)


# --- values -----------------------------------------------------------------------------------------------
def _tensor_to_numpy(t: torch.Tensor) -> np.ndarray:
    t = torch.Tensor.detach(t).cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    if t.is_complex():
        raise TypeError("complex tensors are not supported")
    return t.contiguous().numpy().copy()


def encode(value, arrays: list, modules=None, callables=None, depth: int = 0):
    """``value`` as a JSON tree; arrays are appended to ``arrays``. ``modules(m, arrays)`` encodes an
    ``nn.Module``; ``callables`` maps allowed functions to their names."""
    if depth > MAX_DEPTH:
        raise TypeError("nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$": "float", "v": repr(value)}
    if isinstance(value, torch.Tensor):
        arrays.append(_tensor_to_numpy(value))
        return {"$": "tensor", "i": len(arrays) - 1, "grad": bool(value.requires_grad)}
    if isinstance(value, (np.ndarray, np.generic)):
        arrays.append(np.asarray(value))
        return {"$": "ndarray", "i": len(arrays) - 1}
    if isinstance(value, torch.dtype):
        return {"$": "dtype", "v": str(value).replace("torch.", "")}
    if isinstance(value, torch.Generator):
        arrays.append(value.get_state().numpy().copy())
        return {"$": "generator", "i": len(arrays) - 1}
    if isinstance(value, torch.nn.Module):
        if modules is None:
            raise TypeError("a model cannot be sent here")
        return {"$": "module", "v": modules(value, arrays)}
    if isinstance(value, (list, tuple)):
        items = [encode(v, arrays, modules, callables, depth + 1) for v in value]
        return items if isinstance(value, list) else {"$": "tuple", "v": items}
    if isinstance(value, dict):
        if not all(isinstance(k, (str, int)) for k in value):
            raise TypeError("dict keys must be strings or ints")
        return {"$": "dict", "v": [[k, encode(v, arrays, modules, callables, depth + 1)] for k, v in value.items()]}
    if callables is not None:
        for name, fn in callables.items():
            if value is fn:
                return {"$": "fn", "v": name}
    raise TypeError(f"a value of type {type(value).__name__} cannot be sent")


def decode(tree, blobs, modules=None, callables=None, depth: int = 0, _cache=None, grad: bool = False):
    """The inverse of :func:`encode`, strict: unknown tags, bad dtypes, huge or deep values raise
    ProtocolError. Tensors and arrays are new objects built from the bytes."""
    if _cache is None:
        _cache = {}
    if depth > MAX_DEPTH:
        raise ProtocolError("nested too deeply")
    if tree is None or isinstance(tree, (bool, int, float)):
        return tree
    if isinstance(tree, str):
        if len(tree) > MAX_STRING:
            raise ProtocolError(f"a string of {len(tree)} characters")
        return tree
    if isinstance(tree, list):
        if len(tree) > MAX_ITEMS:
            raise ProtocolError(f"a list of {len(tree)} items")
        return [decode(v, blobs, modules, callables, depth + 1, _cache, grad) for v in tree]
    if not isinstance(tree, dict) or not isinstance(tree.get("$"), str):
        raise ProtocolError("unknown value")
    kind = tree["$"]

    def array(i):
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(blobs):
            raise ProtocolError("bad array index")
        if i not in _cache:
            _cache[i] = load_array(blobs[i])
        return _cache[i].copy()

    if kind == "tensor":
        a = array(tree.get("i"))
        if a.dtype == np.uint16 or a.dtype == np.uint32 or a.dtype == np.uint64:
            a = a.astype(np.int64)
        t = torch.from_numpy(a)
        if grad and tree.get("grad") is True and t.is_floating_point():
            t.requires_grad_(True)
        return t
    if kind == "ndarray":
        return array(tree.get("i"))
    if kind == "float" and tree.get("v") in ("nan", "inf", "-inf"):
        return float(tree["v"])
    if kind == "tuple" and isinstance(tree.get("v"), list):
        return tuple(decode(tree["v"], blobs, modules, callables, depth, _cache, grad))
    if kind == "dict" and isinstance(tree.get("v"), list) and len(tree["v"]) <= MAX_ITEMS:
        out = {}
        for pair in tree["v"]:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))):
                raise ProtocolError("bad dict")
            out[pair[0]] = decode(pair[1], blobs, modules, callables, depth + 1, _cache, grad)
        return out
    if kind == "dtype" and isinstance(tree.get("v"), str):
        dtype = getattr(torch, tree["v"], None)
        if not isinstance(dtype, torch.dtype):
            raise ProtocolError("bad dtype")
        return dtype
    if kind == "generator":
        g = torch.Generator()
        try:
            g.set_state(torch.from_numpy(array(tree.get("i")).astype(np.uint8)))
        except RuntimeError as e:
            raise ProtocolError(f"bad generator state: {e}") from None
        return g
    if kind == "fn" and callables is not None and tree.get("v") in callables:
        return callables[tree["v"]]
    if kind == "module" and modules is not None:
        return modules(tree.get("v"), lambda i: array(i))
    raise ProtocolError(f"unexpected value of kind {kind!r}")
