"""Attribution methods, written from scratch: ``method(model, inputs, target, **options) -> Tensor``.

``inputs`` is a batch ``(N, C, H, W)`` (or ``(N, D)``); ``target`` an int, a sequence or a LongTensor of
N class indices; the result has the shape of ``inputs`` (Grad-CAM and FullGrad: ``(N, 1, H, W)``).
:data:`METHODS` maps each method's name to its function, so labs can loop over methods by name.

| method | module | chapter |
|---|---|---|
| saliency, input_x_gradient | gradients | 1, 2 |
| deeplift, deepshap | deeplift (on the engine in rules) | 3 |
| integrated_gradients, gradient_shap | integrated_gradients | 4 |
| smoothgrad | smoothgrad | 5 |
| guided_backprop | guided_backprop (on the engine in rules) | 13, 11 |
| deconvnet | deconvnet (on the engine in rules) | 11 |
| grad_cam, guided_grad_cam | grad_cam | 13 |
| full_gradients, fullgrad | fullgrad | 13 |
| lrp | lrp (rules in lrp_rules, on the engine in rules) | 9 |
| random_attribution | random_attribution | 13, labs |
| masked_outputs, superpixels (the masked-evaluation engine) | masking | 6, 7, 8, 12, labs |
| occlusion | occlusion (on the engine in masking) | 12 |
| shapley_values, kernel_shap | shapley (on the engine in masking) | 8 |
| xrai | xrai (regions over integrated_gradients) | 6 |
| lime | lime (on the engine in masking) | 7 |

Not in :data:`METHODS` (it takes no ``inputs``: it *makes* an input), but here by name:

| function | module | chapter |
|---|---|---|
| activation_maximization (general, with a prior, in a generator's code space) | activation_maximization | 10 |

:func:`count_passes` (``with count_passes(model) as sizes:``) records the batch size of every forward
pass a call makes, leaving out the package's one-example layout check: what chapters 4, 8 and 12 and the
tests count.

(The digits generator and the Gaussian digits prior it uses are models: ``models.load("digits_vae")``,
``models.digits_prior()``, in ``xai_course/models/generators.py``.)
"""
from ._core import METHODS, count_passes, explaining, gradient_of_target, register
from .activation_maximization import activation_maximization
from .baselines import make_baseline
from .deconvnet import deconvnet
from .deeplift import deeplift, deepshap
from .fullgrad import full_gradients, fullgrad
from .grad_cam import grad_cam, guided_grad_cam
from .gradients import input_x_gradient, saliency
from .guided_backprop import guided_backprop
from .integrated_gradients import gradient_shap, integrated_gradients
from .lrp import lrp
from .lime import lime
from .masking import masked_outputs, superpixels
from .occlusion import occlusion
from .shapley import kernel_shap, shapley_values
from .random_attribution import random_attribution
from .rules import Rule, backward_rules
from .smoothgrad import smoothgrad
from .xrai import xrai

__all__ = ["METHODS", "register", "explaining", "count_passes", "gradient_of_target", "make_baseline", "Rule",
           "backward_rules", "saliency", "input_x_gradient", "deeplift", "deepshap", "integrated_gradients", "gradient_shap",
           "smoothgrad", "guided_backprop", "deconvnet", "grad_cam", "guided_grad_cam", "full_gradients", "fullgrad",
           "random_attribution", "activation_maximization", "lrp", "masked_outputs", "superpixels",
           "occlusion", "shapley_values", "kernel_shap", "xrai", "lime"]
