"""The grader's fixtures: test folders that only make sense with a submission to grade.

The repository's plain ``pytest`` must not collect them; the grader (``xai-course-grade``, which registers
the plugin ``xai_course_grader``) does.
"""


def pytest_ignore_collect(collection_path, config):
    return not config.pluginmanager.hasplugin("xai_course_grader")
