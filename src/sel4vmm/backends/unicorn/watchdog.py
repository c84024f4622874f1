"""Ending a run at its host-time limit, without unicorn's ``timeout``.

``emu_start(..., timeout=...)`` makes unicorn run 1.7x slower for the whole slice (measured
on the memtest guest), even when the timeout never fires.  The event loop only needs to
stop a free-running guest when the run's time limit comes, so one long-lived thread waits
for that moment and calls ``emu_stop`` — what unicorn's own timeout thread does — and costs
nothing while the guest runs.  (An asynchronous stop may make unicorn repeat the device
access it lands after, which is why it is used only to end a run.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Watchdog:
    """Calls ``stop()`` once per armed slice when its deadline passes, from its own thread."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self._condition = threading.Condition()
        self._deadline: float | None = None
        self._closed = False
        self.fired = 0
        self._thread = threading.Thread(target=self._run, name="sel4vmm-watchdog", daemon=True)
        self._thread.start()

    def arm(self, seconds: float) -> None:
        """Stop the slice that is about to start after ``seconds`` of host time."""
        with self._condition:
            self._deadline = time.monotonic() + seconds
            self._condition.notify()

    def disarm(self) -> None:
        """The slice ended by itself: a late firing must not stop the next one."""
        with self._condition:
            self._deadline = None

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._deadline = None
            self._condition.notify()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        with self._condition:
            while not self._closed:
                if self._deadline is None:
                    self._condition.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._condition.wait(remaining)
                    continue
                self._deadline = None
                self.fired += 1
                # Still holding the lock: disarm() cannot return while the stop is in flight,
                # so a stop never reaches a slice it was not armed for.
                self._stop()
