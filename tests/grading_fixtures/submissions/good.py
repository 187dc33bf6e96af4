"""A correct submission for chapter 99 (the grader's own fixtures)."""
import torch


def gradient(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return torch.autograd.grad(out, x)[0]


def times_input(model, inputs, target):
    x = inputs.detach().clone().requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(target).reshape(-1, 1)).sum()
    return inputs * torch.autograd.grad(out, x)[0]


# top-level work the grader must NOT run
print("training a model for an hour...")
raise SystemExit("the grader ran the student's top-level code")
