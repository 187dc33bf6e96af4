"""The course's autograder: release student notebooks and grade submissions with pytest.

One module per job:

- :mod:`~xai_course.grading.markup`   reads the exercise markup of the chapter notebooks and extracts a
  submission's exercise code (notebook cells tagged ``exercise``, or a ``.py`` file's imports and defs);
- :mod:`~xai_course.grading.release`  writes the student notebooks (solutions replaced by a stub) and
  checks that no solution line leaks (``python -m xai_course.grading release``);
- :mod:`~xai_course.grading.forbidden` finds, statically, exercises that call a reference library;
- :mod:`~xai_course.grading.sandbox`  runs ONE test in a fresh subprocess with a time limit
  (:mod:`~xai_course.grading._runner` is what runs inside it);
- :mod:`~xai_course.grading.checks`   helpers the grading tests use (random models, safe calls, comparisons);
- :mod:`~xai_course.grading.plugin`   the pytest plugin (``-p xai_course.grading.plugin --submission PATH``):
  points, partial credit, the summary and Gradescope's ``results.json``;
- :mod:`~xai_course.grading.cli`      ``xai-course-grade SUBMISSION [--hidden DIR] [--results FILE]``.

The public tests live in ``xai_course/grading/public/``. This package imports nothing heavy on import.
"""
