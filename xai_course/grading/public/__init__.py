"""The public grading tests, one file per chapter (see :mod:`xai_course.grading.plugin` for the format)."""
