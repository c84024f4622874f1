"""Several VMs' consoles on one terminal: every line starts with the VM's name.

``[vm_a] memtest: OK ...``.  Output arrives in pieces, from whichever VM ran last, and a
line may be unfinished (a shell prompt): the piece is shown at once, and when another VM
prints while the line is open, the open line is ended first so each line has one owner.
A line's end is ``\\n`` (Linux's ``\\r\\n`` passes through unchanged).
"""

from __future__ import annotations

from collections.abc import Callable


class LabelledConsole:
    """Merges VM consoles into one byte stream (``write``), lines labelled by VM name."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        #: The VM whose line is open (printed without its end yet), if any.
        self._open: str | None = None

    def sink(self, name: str) -> Callable[[bytes], None]:
        """The console sink of VM ``name``."""
        label = f"[{name}] ".encode()

        def write(data: bytes) -> None:
            self._emit(name, label, data)

        return write

    def _emit(self, name: str, label: bytes, data: bytes) -> None:
        if not data:
            return
        out = bytearray()
        if self._open is not None and self._open != name:
            out += b"\n"  # end the other VM's unfinished line
            self._open = None
        pieces = data.split(b"\n")
        lines = [piece + b"\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
        for line in lines:
            if self._open is None:
                out += label
            out += line
            self._open = None if line.endswith(b"\n") else name
        self._write(bytes(out))
