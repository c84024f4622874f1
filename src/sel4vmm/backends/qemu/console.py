"""The guest console as QEMU prints it: streamed, kept, and watched for a marker line.

QEMU writes the PL011's output to its stdout in whatever pieces the guest produced, so a
UTF-8 character or the marker can be split across reads; the stream decodes
incrementally and searches only the text that could complete the marker, so watching a
long boot log costs nothing per byte already seen.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable
from typing import Protocol


class TextSink(Protocol):
    """Anything with ``write(str)``: ``sys.stdout``, an open file, ``io.StringIO``."""

    def write(self, text: str, /) -> object: ...


ConsoleSink = TextSink | Callable[[str], object]


class ConsoleStream:
    """Decodes console bytes, forwards the text to a sink, and notes when ``marker`` shows."""

    def __init__(
        self,
        sink: ConsoleSink | None = None,
        marker: str | None = None,
        *,
        started: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if marker == "":
            raise ValueError("an empty marker would match before the guest printed anything")
        self._sink = sink
        self.marker = marker
        self._clock = clock
        self.started = clock() if started is None else started
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pieces: list[str] = []
        self._tail = ""
        #: Seconds from ``started`` until the marker was first seen, or None.
        self.marker_seconds: float | None = None

    def feed(self, data: bytes) -> None:
        self._emit(self._decoder.decode(data))

    def finish(self) -> None:
        """Flush a character cut off at the end of the output."""
        self._emit(self._decoder.decode(b"", final=True))

    def _emit(self, text: str) -> None:
        if not text:
            return
        self._pieces.append(text)
        if self.marker is not None and self.marker_seconds is None:
            window = self._tail + text
            if self.marker in window:
                self.marker_seconds = self._clock() - self.started
            self._tail = window[-(len(self.marker) - 1) :] if len(self.marker) > 1 else ""
        if self._sink is not None:
            write = getattr(self._sink, "write", None)
            if write is not None:
                write(text)
                flush = getattr(self._sink, "flush", None)
                if flush is not None:
                    flush()
            else:
                assert callable(self._sink)
                self._sink(text)

    @property
    def seen_marker(self) -> bool:
        return self.marker_seconds is not None

    @property
    def text(self) -> str:
        """Everything printed so far, with the guest's CRLF line ends made ``\\n``."""
        return "".join(self._pieces).replace("\r\n", "\n")
