"""Resource limits for fuzz targets and hostile inputs: a hang or a blow-up fails the test.

In-process targets run under :func:`bounded` (a wall-clock alarm, and tracemalloc's peak of
Python allocations, which is where a parser's buffers live); the command line runs under
:func:`run_sel4vmm` in a child with ``RLIMIT_AS`` and a timeout.  The limits are far above
what a correct parser needs (milliseconds, kilobytes), so they only catch hangs and bombs.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

SRC = Path(__file__).resolve().parents[2] / "src"


class LimitExceeded(AssertionError):
    """The target ran too long or allocated too much."""


@contextmanager
def bounded(*, seconds: float = 20.0, max_bytes: int = 256 << 20) -> Iterator[None]:
    def expired(_signum: int, _frame: FrameType | None) -> None:
        raise LimitExceeded(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    tracemalloc.start()
    tracemalloc.reset_peak()
    # pytest-timeout may have its own alarm pending: put it back, less the time used.
    started = time.monotonic()
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay:
            left = max(outer_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    if peak > max_bytes:
        raise LimitExceeded(f"allocated {peak} bytes at peak, over {max_bytes}")


def run_sel4vmm(
    arguments: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = 120.0,
    address_space: int = 4 << 30,
) -> subprocess.CompletedProcess[str]:
    """``python -m sel4vmm ARGS`` with this worktree's source, an address-space limit and a
    timeout; a hang raises ``subprocess.TimeoutExpired`` and so fails the test."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "sel4vmm", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        check=False,
    )
