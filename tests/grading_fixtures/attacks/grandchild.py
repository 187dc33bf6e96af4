"""Escaping the test: starts processes that outlive it (new session) by every route."""
import os
import subprocess
import sys
import torch

SCRIPT = "import os, time\nos.setsid()\ntime.sleep(60)\n"


def _spawn():
    tries = []
    for how in ("fork", "popen", "posix_spawn", "system", "multiprocessing"):
        try:
            if how == "fork":
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() == 0:
                        import time
                        time.sleep(60)
                    os._exit(0)
            elif how == "popen":
                subprocess.Popen([sys.executable, "-c", SCRIPT, "XAI-GRANDCHILD-MARKER"], start_new_session=True)
            elif how == "posix_spawn":
                os.posix_spawn(sys.executable, [sys.executable, "-c", SCRIPT, "XAI-GRANDCHILD-MARKER"], dict(os.environ))
            elif how == "system":
                os.system("sleep 60 XAI-GRANDCHILD-MARKER &")
            else:
                import multiprocessing
                multiprocessing.Process(target=__import__("time").sleep, args=(60,), daemon=False).start()
            tries.append(how + ": started")
        except Exception as e:
            tries.append(f"{how}: {type(e).__name__}")
    print("spawn attempts:", tries)


def gradient(model, inputs, target):
    _spawn()
    return torch.zeros_like(inputs)


def times_input(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]
