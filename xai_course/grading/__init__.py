"""The course's autograder: release student notebooks, and grade submissions safely.

One module per job:

- :mod:`~xai_course.grading.markup`    the exercise markup of the chapter notebooks;
- :mod:`~xai_course.grading.release`   writes the student notebooks (``python -m xai_course.grading release``);
- :mod:`~xai_course.grading.cli`       ``xai-course-grade`` and ``xai-course-grade-class``: checks the options, then
  execs the grader with its configuration in an anonymous file;
- :mod:`~xai_course.grading.grader`    the TRUSTED grader: forks the fork servers before loading any secret, imports
  the tests, grades each student in a child process, writes results.json and the CSV;
- :mod:`~xai_course.grading.remote`    the grader's side of the workers: spawn, call, validate, kill everything;
- :mod:`~xai_course.grading.worker`    the UNTRUSTED side: fork server, sandbox (namespace + uid as root, audit hook),
  loading the student's code, answering calls;
- :mod:`~xai_course.grading.protocol`  plain data between the two (JSON + ``.npy``, never pickle), strict decoding;
- :mod:`~xai_course.grading.builders`  models and functions as recipes both sides can rebuild;
- :mod:`~xai_course.grading.checks`    helpers the grading tests use (``call``, builders, comparisons);
- :mod:`~xai_course.grading.forbidden` static check: an exercise that names a reference implementation.

The public tests live in ``xai_course/grading/public/``. The worker side imports nothing of the grader side.
This package imports nothing on import.
"""
