"""Snapshots of everything a method must leave as it found it: the model's state and the inputs."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules import module as module_globals

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
              "_state_dict_hooks", "_load_state_dict_pre_hooks")
GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                "_global_backward_pre_hooks")


def snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "grads": {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()},
        "training": {k: m.training for k, m in model.named_modules()},
        "hooks": {k: tuple(len(getattr(m, d, {}) or {}) for d in HOOK_DICTS) for k, m in model.named_modules()},
        "global_hooks": tuple(len(getattr(module_globals, g, {})) for g in GLOBAL_HOOKS),
        "tensor_hooks": {k: len(p._backward_hooks or {}) for k, p in model.named_parameters()},
    }


def assert_unchanged(before: dict, after: dict) -> None:
    assert before["state"].keys() == after["state"].keys()
    for k in before["state"]:
        assert torch.equal(before["state"][k], after["state"][k]), f"parameter or buffer {k} changed"
    assert before["requires_grad"] == after["requires_grad"], "requires_grad flags changed"
    for k, g in before["grads"].items():
        h = after["grads"][k]
        assert (g is None) == (h is None) and (g is None or torch.equal(g, h)), f"{k}.grad changed"
    assert before["training"] == after["training"], "train/eval mode changed"
    assert before["hooks"] == after["hooks"], "module hooks were left behind"
    assert before["global_hooks"] == after["global_hooks"], "global hooks were left behind"
    assert before["tensor_hooks"] == after["tensor_hooks"], "tensor hooks were left behind"


def inputs_snapshot(x: torch.Tensor) -> tuple:
    return x.detach().clone(), x.requires_grad, x.grad


def assert_inputs_unchanged(before: tuple, x: torch.Tensor) -> None:
    value, requires_grad, grad = before
    assert torch.equal(value, x.detach()), "the inputs were modified"
    assert x.requires_grad == requires_grad, "the inputs' requires_grad flag changed"
    assert x.grad is grad, "the inputs' .grad changed"
