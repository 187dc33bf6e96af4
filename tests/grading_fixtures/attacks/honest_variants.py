"""Honest answers written unlike the reference: float64, loops, torch.func, hooks, seeding torch."""
import torch


def gradient(model, inputs, target):
    """torch.func in float64, one example at a time (after seeding torch, as students do: torch then
    formats the call stack, for CUDA's lazy seeding, which reads the grader's own source files)."""
    from torch.func import grad

    torch.manual_seed(0)

    model64 = __import__("copy").deepcopy(model).double()
    rows = []
    for i in range(inputs.shape[0]):
        t = int(target[i])
        rows.append(grad(lambda x: model64(x[None])[0, t])(inputs[i].double()))
    return torch.stack(rows).float()


def times_input(model, inputs, target):
    """A forward hook on the first layer collects the gradient by backward on a loop of targets."""
    store = {}
    first = next(iter(model.children()))

    def keep(module, args):
        args[0].retain_grad()
        store["x"] = args[0]

    handle = first.register_forward_pre_hook(keep)
    try:
        x = inputs.detach().clone().requires_grad_(True)
        out = model(x)
        total = sum(out[n, int(target[n])] for n in range(len(target)))
        total.backward()
    finally:
        handle.remove()
    model.zero_grad(set_to_none=True)
    return inputs * store["x"].grad
