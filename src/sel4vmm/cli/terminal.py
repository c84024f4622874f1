"""The terminal side of ``sel4vmm run``: raw keys for the guest, the escape key, and
signals turned into a flag the event loop checks between slices."""

from __future__ import annotations

import os
import queue
import signal
import sys
import termios
import threading
from typing import Any

#: Ctrl-A, the escape key's prefix, and what may follow it.
ESCAPE_PREFIX = 0x01
ESCAPE_STOP = (ord("x"), ord("X"))


class TerminalSession:
    """The terminal on stdin in raw mode for the run's length: a daemon thread reads keys
    (so the VMM never blocks), Ctrl-A X asks the VM to stop, everything else (Ctrl-C
    included) goes to the guest.  Output processing stays on, so the guest's lines still
    end where it ends them.  The terminal is restored on exit, however the run ends."""

    def __init__(self) -> None:
        self._chunks: queue.Queue[bytes] = queue.Queue()
        self._fd = -1
        self._saved: list[Any] | None = None
        self.escaped = False
        self._after_prefix = False

    def __enter__(self) -> TerminalSession:
        self._fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self._fd)
        mode = termios.tcgetattr(self._fd)
        mode[0] &= ~(termios.IXON | termios.ICRNL | termios.INLCR | termios.IGNCR)
        mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self._fd, termios.TCSANOW, mode)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 1024)
            except OSError:
                return
            if not data:
                return
            self._chunks.put(self._filter(data))

    def _filter(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if self._after_prefix:
                self._after_prefix = False
                if byte in ESCAPE_STOP:
                    self.escaped = True
                    continue
                if byte == ESCAPE_PREFIX:
                    out.append(byte)
                    continue
            if byte == ESCAPE_PREFIX:
                self._after_prefix = True
                continue
            out.append(byte)
        return bytes(out)

    def wait(self, timeout: float) -> bool:
        try:
            chunk = self._chunks.get(timeout=timeout)
        except queue.Empty:
            return self.escaped
        self._chunks.put(chunk)
        return True

    def take(self) -> bytes:
        out = bytearray()
        while True:
            try:
                out += self._chunks.get_nowait()
            except queue.Empty:
                return bytes(out)


class SignalFlag:
    """SIGINT and SIGTERM set a flag the event loop checks between slices (a
    KeyboardInterrupt raised inside a unicorn callback would be lost)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)

    def _handle(self, number: int, _frame: object) -> None:
        self.received = number

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
