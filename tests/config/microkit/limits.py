"""A resource guard for hostile-input tests: a hang or a memory blow-up fails the test.

``within_limits`` arms a wall-clock alarm (``setitimer``) and lowers the address-space
soft limit to what the process uses now plus a budget, restoring both afterwards.  A
checker that loops forever raises :class:`ResourceLimitExceeded` from the alarm; one that
tries to allocate without bound gets ``MemoryError`` -- either fails the test at once
instead of stalling the suite or the machine.  The limits are far above what the inputs
need (they are hang and blow-up detectors, not timing assertions).
"""

from __future__ import annotations

import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class ResourceLimitExceeded(AssertionError):
    """The guarded code ran past its time limit."""


def _address_space_in_use() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")  # pragma: no cover


@contextmanager
def within_limits(seconds: float = 60.0, memory_bytes: int = 2 << 30) -> Iterator[None]:
    """Run the body with at most ``seconds`` of wall time and ``memory_bytes`` more memory."""

    def expire(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        raise ResourceLimitExceeded(f"still running after {seconds} s: a hang")

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    budget = _address_space_in_use() + memory_bytes
    if hard != resource.RLIM_INFINITY:
        budget = min(budget, hard)
    previous = signal.signal(signal.SIGALRM, expire)
    resource.setrlimit(resource.RLIMIT_AS, (budget, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
