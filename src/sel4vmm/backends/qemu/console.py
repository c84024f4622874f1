"""The guest console as QEMU prints it: streamed, kept, and watched for marker text.

QEMU writes the PL011's output to its stdout in whatever pieces the guest produced, so a
UTF-8 character or a marker can be split across reads; the stream decodes incrementally
and searches only the text that could complete a marker, so watching a long boot log costs
nothing per byte already seen.  Two markers are watched: ``marker``, whose first appearance
is timed, and ``until``, whose appearance ends the run (``run --until TEXT``).
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


class TextWatch:
    """Finds ``text`` in a stream of pieces, keeping only the tail that could complete it."""

    def __init__(self, text: str) -> None:
        if text == "":
            raise ValueError("an empty marker would match before the guest printed anything")
        self.text = text
        self._tail = ""
        self.seen = False

    def feed(self, piece: str) -> bool:
        """True when ``text`` has now appeared for the first time."""
        if self.seen:
            return False
        window = self._tail + piece
        if self.text in window:
            self.seen = True
            return True
        self._tail = window[-(len(self.text) - 1) :] if len(self.text) > 1 else ""
        return False


class ConsoleStream:
    """Decodes console bytes, forwards the text to a sink, and notes when ``marker`` and
    ``until`` show."""

    def __init__(
        self,
        sink: ConsoleSink | None = None,
        marker: str | None = None,
        *,
        until: str | None = None,
        started: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self.marker = marker
        self._marker_watch = TextWatch(marker) if marker is not None else None
        self.until = until
        self._until_watch = TextWatch(until) if until is not None else None
        self._clock = clock
        self.started = clock() if started is None else started
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pieces: list[str] = []
        #: Seconds from ``started`` until the marker was first seen, or None.
        self.marker_seconds: float | None = None
        #: Seconds from ``started`` until the ``until`` text appeared, or None.
        self.until_seconds: float | None = None
        #: Bytes the guest printed so far.
        self.bytes_seen = 0

    def feed(self, data: bytes) -> None:
        self.bytes_seen += len(data)
        self._emit(self._decoder.decode(data))

    def finish(self) -> None:
        """Flush a character cut off at the end of the output."""
        self._emit(self._decoder.decode(b"", final=True))

    def _emit(self, text: str) -> None:
        if not text:
            return
        self._pieces.append(text)
        if self._marker_watch is not None and self._marker_watch.feed(text):
            self.marker_seconds = self._clock() - self.started
        if self._until_watch is not None and self._until_watch.feed(text):
            self.until_seconds = self._clock() - self.started
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
    def seen_until(self) -> bool:
        """The ``until`` text has appeared: the run should end (successfully)."""
        return self.until_seconds is not None

    @property
    def text(self) -> str:
        """Everything printed so far, with the guest's CRLF line ends made ``\\n``."""
        return "".join(self._pieces).replace("\r\n", "\n")
