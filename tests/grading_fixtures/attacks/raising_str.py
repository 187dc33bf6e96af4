"""An exception whose __str__ raises, and one with a 50 MB message."""
import torch


class Nasty(Exception):
    def __str__(self):
        raise RuntimeError("no message for you")

    def __repr__(self):
        raise RuntimeError("no repr either")


def gradient(model, inputs, target):
    raise Nasty()


def times_input(model, inputs, target):
    raise ValueError("x" * 50_000_000)
