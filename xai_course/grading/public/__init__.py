"""The public grading tests, one file per chapter (format: :mod:`xai_course.grading.checks`, book/grading.md)."""
