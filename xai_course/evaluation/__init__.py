"""Evaluating explanations: localisation against ground-truth masks, map similarity (and, with the labs,
pixel perturbation, insertion/deletion, faithfulness correlation, ROAR and sanity checks).

Sanity checks (Adebayo et al., 2018; lab 16): ``randomized_models`` (cascading or independent
re-initialisation from the top layer down) and the similarity measures ``spearman(absolute=...)``,
``ssim``, ``hog_similarity``, all four at once with ``map_similarities``.

The labs' studies are modules run as ``python -m xai_course.evaluation.<lab>_lab --full``:
``bias_lab`` (lab 17: test sets with a spurious mark aligned, flipped or absent, the fairness gap, mass
of every method's maps on the mark, half-mass area).

Plain functions on batches; attributions ``(N, C, H, W)`` or ``(N, 1, H, W)`` are summed over channels
first, as everywhere in the course.
"""
from .localisation import iou_top_k, pixel_map, pointing_game, relevance_mass
from .perturbation import fill_values, perturb, perturbed_outputs, rank_pixels
from .randomization import (data_randomization_test, model_randomization_test, parameter_layers,
                            randomized_models)
from .similarity import hog_similarity, map_similarities, normalise_maps, pearson, spearman, ssim

__all__ = ["rank_pixels", "fill_values", "perturb", "perturbed_outputs", "pixel_map", "pointing_game", "relevance_mass", "iou_top_k", "pearson", "spearman",
           "randomized_models", "parameter_layers", "model_randomization_test", "data_randomization_test", "ssim", "hog_similarity", "map_similarities", "normalise_maps"]
