"""The grader's fixtures: test folders and submissions that only make sense to the grader
(``xai-course-grade --tests tests/grading_fixtures/tests99 ...``); the repository's pytest never collects them."""


def pytest_ignore_collect(collection_path, config):
    return True
