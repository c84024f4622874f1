"""Stopping a QEMU run cleanly on SIGINT and SIGTERM, and QEMU dying with sel4vmm.

Python's default SIGTERM ends the interpreter without unwinding, so the shared RAM file
stayed in ``/dev/shm`` and QEMU kept running.  While a run is in progress,
:func:`signals_stop_the_run` turns SIGTERM (and SIGINT) into :class:`RunStopped`, a
``KeyboardInterrupt`` that carries the signal: every ``with`` block unwinds (QEMU is stopped,
the RAM file removed) and the command line exits with ``128 + signal`` (130, 143), as a shell
reports a process killed by it.  A second signal during that cleanup is ignored, not
allowed to cut it short; the cleanup itself is bounded by timeouts.

If sel4vmm is killed outright (SIGKILL), :func:`sel4vmm.subprocesses.die_with_parent` (given
to QEMU by :mod:`.process`) makes the kernel send QEMU
SIGKILL too (``PR_SET_PDEATHSIG``), so no emulator outlives the run that started it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunStopped(KeyboardInterrupt):
    """The run was stopped by a signal; ``exit_status`` is what a shell would report."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


@contextmanager
def signals_stop_the_run() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`RunStopped` (once).

    Only the main thread can install handlers; elsewhere the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return  # already unwinding: let the cleanup finish
        stopping = True
        raise RunStopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
