"""xai_course: explaining neural networks, every method from scratch."""
__version__ = "0.1.0"
