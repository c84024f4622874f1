"""Timing helpers shared by the benchmark scripts (run as ``python bench/<name>.py``, so
this directory is on ``sys.path``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def timed(action: Callable[[], object]) -> float:
    """Seconds one call of ``action`` takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def best_of(repeats: int, action: Callable[[], object]) -> float:
    """The fastest of ``repeats`` runs: the least disturbed by the rest of the machine."""
    return min(timed(action) for _ in range(repeats))
