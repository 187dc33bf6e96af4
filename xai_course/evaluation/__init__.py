"""Evaluating explanations: localisation against ground-truth masks, map similarity (and, with the labs,
pixel perturbation, insertion/deletion, faithfulness correlation, ROAR and sanity checks).

Plain functions on batches; attributions ``(N, C, H, W)`` or ``(N, 1, H, W)`` are summed over channels
first, as everywhere in the course.
"""
from .localisation import iou_top_k, pixel_map, pointing_game, relevance_mass
from .perturbation import (faithfulness_correlation, fill_values, insertion_deletion, perturb, perturbed_outputs,
                           pixel_perturbation, rank_pixels)
from .similarity import pearson, spearman

__all__ = ["rank_pixels", "fill_values", "perturb", "perturbed_outputs", "pixel_perturbation",
           "insertion_deletion", "faithfulness_correlation", "pixel_map", "pointing_game", "relevance_mass", "iou_top_k", "pearson", "spearman"]
