"""A route to a reference: tries to switch the guard off (os.path, builtins, gc, code)."""
import builtins
import gc
import os
import sys
import torch


def gradient(model, inputs, target):
    os.path.realpath = lambda p, *a, **k: "/usr/lib/python3/ok.py"
    os.fspath = lambda p: "/usr/lib/python3/ok.py"
    builtins.any = lambda it: False

    class Sneaky:  # answers an allowed path to the guard, the real one to open()
        calls = 0

        def __fspath__(self):
            Sneaky.calls += 1
            return "/usr/lib/ok.py" if Sneaky.calls % 2 else os.__file__.replace("os.py", "../site-packages/captum/__init__.py")

    try:
        open(Sneaky()).read()
    except Exception:
        pass
    try:
        for obj in gc.get_objects():
            if callable(obj) and getattr(obj, "__name__", "") in ("hook", "guard", "guarded_import"):
                obj.__code__ = (lambda *a, **k: None).__code__
    except Exception:
        pass
    attr = __import__("cap" + "tum.attr", fromlist=["Saliency"])
    return attr.Saliency(model).attribute(inputs, target=target, abs=False)


def times_input(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]
