"""``python -m xai_course.grading release [--out DIR]`` or ``python -m xai_course.grading [grade] SUBMISSION ...``."""
import sys

from .cli import main

sys.exit(main())
