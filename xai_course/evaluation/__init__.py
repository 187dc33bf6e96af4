"""Evaluating explanations (the labs 14-17): is an explanation faithful to the model, does it find the
object, does it survive randomisation, does it reveal a bias? Plain functions on batches; attributions
``(N, C, H, W)`` or ``(N, 1, H, W)`` are summed over channels first, as everywhere in the course.

- Pixel perturbation (lab 14, :mod:`.perturbation`): ``rank_pixels``, ``fill_values``, ``perturb``,
  ``perturbed_outputs`` (every fraction of every image through the masked-evaluation engine), and on
  them ``pixel_perturbation`` (AFOC, KL, PCUO, accuracy), ``insertion_deletion`` and
  ``faithfulness_correlation``.
- Localisation against ground-truth masks (:mod:`.localisation`): ``pointing_game``,
  ``relevance_mass``, ``iou_top_k``.
- ROAR and ROAD (lab 15, :mod:`.retraining`): ``roar`` retrains a fresh model without the top pixels;
  ``road`` imputes them (``noisy_linear_imputation``) and keeps the original model.
- Sanity checks (Adebayo et al., 2018; lab 16, :mod:`.randomization`): ``randomized_models``
  (cascading or independent re-initialisation from the top layer down), the model- and
  data-randomisation tests, and the similarity measures (:mod:`.similarity`) ``spearman(absolute=...)``,
  ``ssim``, ``hog_similarity``, all four at once with ``map_similarities``.

The labs' studies are modules run as ``python -m xai_course.evaluation.<lab>_lab --full`` (their
results ship in ``results/``): ``pp_lab`` (14), ``roar_lab`` (15), ``sanity_lab`` (16), ``bias_lab`` (lab 17: test sets
with a spurious mark aligned, flipped or absent, the fairness gap, mass of every method's maps on the
mark, half-mass area). The options with which labs 14, 16 and 17 call every method on the course CNN come
from one table, ``lab_options.method_options``, parameterised by what each lab chooses.
"""
from .localisation import iou_top_k, pixel_map, pointing_game, relevance_mass
from .perturbation import (faithfulness_correlation, fill_values, insertion_deletion, perturb, perturbed_outputs,
                           pixel_perturbation, rank_pixels)
from .randomization import (data_randomization_test, model_randomization_test, parameter_layers,
                            randomized_models)
from .retraining import RoarResult, noisy_linear_imputation, road, roar, tiny_cnn
from .similarity import hog_similarity, map_similarities, normalise_maps, pearson, spearman, ssim

__all__ = ["rank_pixels", "fill_values", "perturb", "perturbed_outputs", "pixel_perturbation",
           "insertion_deletion", "faithfulness_correlation",
           "pixel_map", "pointing_game", "relevance_mass", "iou_top_k",
           "roar", "road", "noisy_linear_imputation", "tiny_cnn", "RoarResult",
           "randomized_models", "parameter_layers", "model_randomization_test", "data_randomization_test",
           "pearson", "spearman", "ssim", "hog_similarity", "map_similarities", "normalise_maps"]
