"""Watching the guest's console: the text a run waits for, and a kernel that panicked.

A run can end on what the guest prints: ``--until TEXT`` stops it (successfully) when
TEXT first appears, and a Linux panic or oops stops it as a failure once the kernel has
finished printing its report — the ``---[ end ...`` line Linux prints after the
register dump and call trace (``kernel/panic.c``: ``"---[ end Kernel panic - not
syncing: %s ]---"``; an oops ends with ``"---[ end trace %016llx ]---"``).  The watch
only keeps a bounded tail of the output (enough to match across chunk boundaries and to
show the last lines), so a guest that prints for hours costs no memory.
"""

from __future__ import annotations

from collections import deque
from enum import Enum

#: The lines that start a Linux failure report (``kernel/panic.c``, ``arch/arm64/kernel/
#: traps.c`` ``die()`` "Internal error: %s: %016lx [#%d] ...", ``arch/arm64/mm/fault.c``).
PANIC_STARTS = (
    "Kernel panic - not syncing",
    "Internal error: Oops",
    "Unable to handle kernel ",
)
#: The line that ends a report.
REPORT_END = "---[ end "
#: Lines kept for the failure summary.
TAIL_LINES = 40
_MATCH_WINDOW = 4096


class ConsoleEvent(Enum):
    UNTIL = "until"
    PANIC = "panic"


class ConsoleWatch:
    """Feeds on console output; :attr:`event` says when the run should end and why."""

    def __init__(self, until: str | None = None) -> None:
        self.until = until
        self.event: ConsoleEvent | None = None
        #: A failure report started (and perhaps has not finished printing yet).
        self.panicking = False
        self._lines: deque[str] = deque(maxlen=TAIL_LINES)
        self._partial = ""
        self._window = ""

    def feed(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        if self.until is not None and self.event is None:
            self._window = (self._window + text)[-(len(self.until) + _MATCH_WINDOW) :]
            if self.until in self._window:
                self.event = ConsoleEvent.UNTIL
        self._partial += text
        if len(self._partial) > _MATCH_WINDOW:
            self._partial = self._partial[-_MATCH_WINDOW:]
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            self._line(line.rstrip("\r"))

    def _line(self, line: str) -> None:
        self._lines.append(line)
        if not self.panicking and any(start in line for start in PANIC_STARTS):
            self.panicking = True
        elif self.panicking and REPORT_END in line and self.event is None:
            self.event = ConsoleEvent.PANIC

    @property
    def last_lines(self) -> list[str]:
        """The last lines printed (the partial line too, if any)."""
        lines = list(self._lines)
        if self._partial.strip():
            lines.append(self._partial.rstrip("\r"))
        return lines
