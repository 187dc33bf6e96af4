"""Attribution methods, written from scratch: ``method(model, inputs, target, **options) -> Tensor``.

``inputs`` is a batch ``(N, C, H, W)`` (or ``(N, D)``); ``target`` an int, a sequence or a LongTensor of
N class indices; the result has the shape of ``inputs``. :data:`METHODS` maps each method's name to its
function, so labs can loop over methods by name.
"""
from ._core import METHODS, explaining, gradient_of_target, register
from .gradients import input_x_gradient, saliency

__all__ = ["METHODS", "register", "explaining", "gradient_of_target", "saliency", "input_x_gradient"]
