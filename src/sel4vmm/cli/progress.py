"""A heartbeat for long waits: every few seconds, one line on stderr saying how long the
guest has run, how much it printed and when the limit stops it.

A boot that prints nothing for minutes (a nested-KVM bzImage decompressing) otherwise looks
exactly like a hang; the line says it is not, and what will end it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

#: Seconds between heartbeat lines.
HEARTBEAT_INTERVAL = 15.0


class Heartbeat:
    """``with Heartbeat("kvm-boot", timeout, console_bytes):`` around a blocking wait."""

    def __init__(
        self,
        what: str,
        timeout: float | None,
        console_bytes: Callable[[], int],
        *,
        interval: float = HEARTBEAT_INTERVAL,
        stream: TextIO | None = None,
    ) -> None:
        self.what = what
        self.timeout = timeout
        self._console_bytes = console_bytes
        self._interval = interval
        self._stream = stream
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._started = time.monotonic()

    def line(self, elapsed: float) -> str:
        limit = f", stops at {self.timeout:g} s (--timeout)" if self.timeout is not None else ""
        return (
            f"[{self.what}: running {elapsed:.0f} s, {self._console_bytes()} console bytes{limit}]"
        )

    def _beat(self) -> None:
        while not self._done.wait(self._interval):
            stream = self._stream or sys.stderr
            print(self.line(time.monotonic() - self._started), file=stream, flush=True)

    def __enter__(self) -> Heartbeat:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join(timeout=1.0)
