"""Evaluating explanations: localisation against ground-truth masks, map similarity (and, with the labs,
pixel perturbation, insertion/deletion, faithfulness correlation, ROAR and sanity checks).

ROAR and ROAD (lab 15, :mod:`.retraining`): ``roar`` retrains a fresh model without the top pixels;
``road`` imputes them (``noisy_linear_imputation``) and keeps the original model.

Plain functions on batches; attributions ``(N, C, H, W)`` or ``(N, 1, H, W)`` are summed over channels
first, as everywhere in the course.
"""
from .localisation import iou_top_k, pixel_map, pointing_game, relevance_mass
from .perturbation import fill_values, perturb, perturbed_outputs, rank_pixels
from .retraining import RoarResult, noisy_linear_imputation, road, roar, tiny_cnn
from .similarity import pearson, spearman

__all__ = ["rank_pixels", "fill_values", "perturb", "perturbed_outputs", "pixel_map", "pointing_game", "relevance_mass", "iou_top_k", "pearson", "spearman",
           "roar", "road", "noisy_linear_imputation", "tiny_cnn", "RoarResult"]
