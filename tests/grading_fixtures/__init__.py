"""Fixtures of tests/test_grading.py (a package, so that its conftest.py does not shadow tests/conftest.py)."""
