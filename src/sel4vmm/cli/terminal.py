"""The terminal side of ``sel4vmm run``: raw keys for the guest, the escape key, the
console focus of a several-VM run, and signals turned into a flag the event loop checks
between slices."""

from __future__ import annotations

import os
import signal
import sys
import termios
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

#: Ctrl-A, the escape key's prefix, and what may follow it.
ESCAPE_PREFIX = 0x01
ESCAPE_STOP = (ord("x"), ord("X"))
#: Ctrl-A N: the next VM's console takes the keys (a run of several VMs).
ESCAPE_NEXT = (ord("n"), ord("N"))


class TerminalSession:
    """The terminal on stdin in raw mode for the run's length: a daemon thread reads keys
    (so the VMM never blocks), Ctrl-A X asks the VM to stop, everything else (Ctrl-C
    included) goes to the guest.  Output processing stays on, so the guest's lines still
    end where it ends them.  The terminal is restored on exit, however the run ends.

    With several ``consoles`` (VM names), keys go to the focused one (the first at
    start); Ctrl-A N moves the focus to the next and tells ``on_focus``.  Keys typed
    before a switch still go to the VM that had the focus when they were typed
    (:meth:`take_routed`)."""

    def __init__(
        self,
        consoles: Sequence[str] = (),
        on_focus: Callable[[str], None] | None = None,
    ) -> None:
        self._pending: deque[tuple[int, bytes]] = deque()
        self._ready = threading.Condition()
        self._fd = -1
        self._saved: list[Any] | None = None
        self.escaped = False
        self._after_prefix = False
        self.consoles = list(consoles)
        self._on_focus = on_focus
        #: The index into :attr:`consoles` of the console that takes the keys.
        self.focus = 0

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
            self.feed(data)

    def feed(self, data: bytes) -> None:
        """Keys read from the terminal: filtered, queued for the console with the focus."""
        routed = self._route(data)
        with self._ready:
            self._pending.extend(routed)
            self._ready.notify_all()  # also when only the escape came

    def _filter(self, data: bytes) -> bytes:
        """What of ``data`` reaches the guests (the escape sequences taken out)."""
        return b"".join(chunk for _, chunk in self._route(data))

    def _route(self, data: bytes) -> list[tuple[int, bytes]]:
        routed: list[tuple[int, bytes]] = []
        out = bytearray()
        for byte in data:
            if self._after_prefix:
                self._after_prefix = False
                if byte in ESCAPE_STOP:
                    self.escaped = True
                    continue
                if byte in ESCAPE_NEXT and len(self.consoles) > 1:
                    if out:
                        routed.append((self.focus, bytes(out)))
                        out.clear()
                    self.focus = (self.focus + 1) % len(self.consoles)
                    if self._on_focus is not None:
                        self._on_focus(self.consoles[self.focus])
                    continue
                if byte == ESCAPE_PREFIX:
                    out.append(byte)
                    continue
            if byte == ESCAPE_PREFIX:
                self._after_prefix = True
                continue
            out.append(byte)
        if out:
            routed.append((self.focus, bytes(out)))
        return routed

    def wait(self, timeout: float) -> bool:
        """Whether keys are waiting (or the escape came), after up to ``timeout`` s."""
        with self._ready:
            if not self._pending and not self.escaped:
                self._ready.wait(timeout)
            return bool(self._pending) or self.escaped

    def take_routed(self) -> list[tuple[int, bytes]]:
        """The keys typed so far, in order, each run with the console (index) it was
        typed to."""
        with self._ready:
            chunks = list(self._pending)
            self._pending.clear()
        out: list[tuple[int, bytes]] = []
        for focus, data in chunks:
            if out and out[-1][0] == focus:
                out[-1] = (focus, out[-1][1] + data)
            else:
                out.append((focus, data))
        return out

    def take(self) -> bytes:
        """The keys typed so far (one console)."""
        return b"".join(data for _, data in self.take_routed())


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
