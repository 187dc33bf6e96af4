"""Data the course runs on, all available offline.

- :func:`shapes`: coloured shapes on cluttered backgrounds with a ground-truth object mask per image
  (and a spurious-cue variant for the bias-detection lab);
- :func:`digits`: scikit-learn's handwritten digits (shipped with scikit-learn);
- :func:`photo`: real photographs shipped with scikit-image.
"""
from .shapes import CLASSES as SHAPE_CLASSES, Dataset, shapes
from .real import PHOTOS, digits, photo

__all__ = ["Dataset", "shapes", "SHAPE_CLASSES", "digits", "photo", "PHOTOS"]
