"""Undo logs, so that an operation that fails part-way leaves nothing changed.

libsel4vm leaves half-mapped reservations and leaked frames behind when something fails in
the middle.  Here every mutation of the seL4 model and of the address space records how to
undo itself in the innermost open transaction; a transaction that raises undoes them in
reverse order.  Nested transactions fold into their parent when they succeed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class UndoLog:
    """A stack of open transactions, each a list of undo actions."""

    def __init__(self) -> None:
        self._open: list[list[Callable[[], None]]] = []

    def record(self, undo: Callable[[], None]) -> None:
        """Remember how to revert a change just made (no-op outside transactions)."""
        if self._open:
            self._open[-1].append(undo)

    @property
    def active(self) -> bool:
        return bool(self._open)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run a block atomically: on any exception every recorded change is reverted."""
        self._open.append([])
        try:
            yield
        except BaseException:
            actions = self._open.pop()
            for undo in reversed(actions):
                undo()
            raise
        actions = self._open.pop()
        if self._open:
            self._open[-1].extend(actions)
