"""A folder's descriptor as dir_fd: the audit event of os.open carries the relative path but not the folder
it is relative to, so a check that resolves it against the working folder is fooled. Loads the standard
library's colorsys, which 99.1 forbids, through a descriptor of its folder (O_DIRECTORY, O_PATH or a plain
O_RDONLY open of the folder)."""
import os
import sysconfig

import torch


def gradient(model, inputs, target):
    for flags in (os.O_RDONLY | os.O_DIRECTORY, os.O_PATH, os.O_RDONLY):
        try:
            d = os.open(sysconfig.get_path("stdlib"), flags)      # a folder outside the write folder
            fd = os.open("color" + "sys.py", os.O_RDONLY, dir_fd=d)
            namespace = {}
            exec(os.read(fd, 1 << 20), namespace)
            assert namespace["rgb_to_hsv"](0.0, 0.0, 0.0) == (0.0, 0.0, 0.0)
            break
        except Exception:
            pass
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return torch.autograd.grad(out, x)[0]


def times_input(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]
