"""How fast the synthetic shapes are drawn (the training sets of the course models are made this way).

    python benchmarks/data_speed.py [N]

Prints the seconds for N images (default 5000) and the images per second. About 4 s for 5000 on 2
cores; training a course model draws its data first, so this is the time a student waits for it.
Speed is measured here, not in pytest: a wall-clock limit in a test fails on a loaded or slow machine
and says nothing about correctness.
"""
from __future__ import annotations

import sys
import time

from xai_course.data import shapes


def main(argv=None) -> int:
    n = int((argv or sys.argv[1:] or ["5000"])[0])
    shapes(10, seed=0)  # warm up (imports, first allocations)
    start = time.perf_counter()
    d = shapes(n, seed=11)
    seconds = time.perf_counter() - start
    assert len(d) == n
    print(f"shapes({n}): {seconds:.2f} s, {n / seconds:,.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
