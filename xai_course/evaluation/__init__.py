"""Evaluating explanations: localisation against ground-truth masks, map similarity (and, with the labs,
pixel perturbation, insertion/deletion, faithfulness correlation, ROAR and sanity checks).

The labs' studies are modules run as ``python -m xai_course.evaluation.<lab>_lab --full``:
``bias_lab`` (lab 17: test sets with a spurious mark aligned, flipped or absent, the fairness gap, mass
of every method's maps on the mark, half-mass area).

Plain functions on batches; attributions ``(N, C, H, W)`` or ``(N, 1, H, W)`` are summed over channels
first, as everywhere in the course.
"""
from .localisation import iou_top_k, pixel_map, pointing_game, relevance_mass
from .perturbation import fill_values, perturb, perturbed_outputs, rank_pixels
from .similarity import pearson, spearman

__all__ = ["rank_pixels", "fill_values", "perturb", "perturbed_outputs", "pixel_map", "pointing_game", "relevance_mass", "iou_top_k", "pearson", "spearman"]
