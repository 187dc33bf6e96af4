"""Static check: does an exercise merely call a reference implementation?

An exercise must be implemented from scratch, so its functions (and the top-level helpers they call)
may not use the package's own methods (``xai_course.attribution``) nor a reference library (Captum,
zennit, shap, lime, Quantus, pytorch-grad-cam). An exercise may forbid more in its grading tests'
mark, ``@pytest.mark.exercise("16.1", ..., forbid=("scipy", "skimage"))`` (lab 16's rank correlation and
SSIM: the statement asks for the computation, and a library has it in one call): the grader passes them
here as ``extra`` and to the sandbox. This module reads the code's AST; the sandbox also blocks the
modules of ``FORBIDDEN`` and the exercise's ``forbid`` at run time (see :mod:`~xai_course.grading.worker`).
"""
from __future__ import annotations

import ast
from typing import Dict, Iterable, Optional

FORBIDDEN = ("xai_course.attribution", "xai_course.evaluation", "xai_course.grading", "xai_course.exercise", "captum", "zennit", "shap", "lime", "quantus", "pytorch_grad_cam",
             "saliency")

DYNAMIC = {"__import__", "import_module", "getattr", "eval", "exec", "find_spec", "__getattribute__", "run_path"}


def forbidden_module(name: str, extra: Iterable[str] = ()) -> Optional[str]:
    """The forbidden prefix ``name`` (a dotted module or object path) starts with, if any (``extra``:
    more prefixes, for one exercise)."""
    for prefix in (*FORBIDDEN, *extra):
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    return None


def _bindings(body: Iterable[ast.stmt]) -> Dict[str, str]:
    """Names bound by the import statements in ``body``, mapped to the full dotted path they stand for."""
    bound = {}
    for node in body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _dotted(node) -> Optional[str]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


def _import_paths(node):
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return []


def find(code: str, functions: Iterable[str], extra: Iterable[str] = ()) -> Optional[str]:
    """Why the functions ``functions`` of ``code`` use a reference implementation (or a module of ``extra``,
    the exercise's own ``forbid``), or None if they do not."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    top = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    module_bound = _bindings(tree.body)
    functions = list(functions)
    extra = tuple(extra)
    todo, seen = [f for f in functions if f in top], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        fn = top[name]
        bound = dict(module_bound)
        bound.update(_bindings(n for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))))
        for node in ast.walk(fn):
            for path in _import_paths(node):
                if forbidden_module(path, extra):
                    return f"`{name}` imports {path}"
            if isinstance(node, (ast.Name, ast.Attribute)):
                dotted = _dotted(node)
                if dotted:
                    head, _, rest = dotted.partition(".")
                    if head in top and head not in seen:
                        todo.append(head)
                    if head in bound:
                        full = bound[head] + ("." + rest if rest else "")
                        hit = forbidden_module(full, extra)
                        if hit:
                            return f"`{name}` uses {full} ({hit})"
            if isinstance(node, ast.Call) and (_dotted(node.func) or "").split(".")[-1] in DYNAMIC:
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        text = arg.value
                        if forbidden_module(text, extra) or text == "attribution" or any(
                                p in text for p in (*FORBIDDEN, *extra) if p != "saliency"):
                            return f"`{name}` reaches {text!r} by name"
    return None
