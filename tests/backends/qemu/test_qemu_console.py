"""Console streaming: decoding across reads, the marker across reads, sinks."""

from __future__ import annotations

import io

import pytest

from sel4vmm.backends.qemu.console import ConsoleStream


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_marker_split_across_reads_is_found_when_it_completes() -> None:
    clock = FakeClock()
    stream = ConsoleStream(marker="SEL4VMM-OK", clock=clock)
    for piece, now in ((b"boot...\r\nSEL4", 101.0), (b"VMM", 102.0), (b"-OK\r\n", 103.5)):
        clock.now = now
        stream.feed(piece)
        if now < 103.5:
            assert not stream.seen_marker
    assert stream.marker_seconds == pytest.approx(3.5)
    clock.now = 200.0
    stream.feed(b"SEL4VMM-OK again")
    assert stream.marker_seconds == pytest.approx(3.5)
    assert stream.text == "boot...\nSEL4VMM-OK\nSEL4VMM-OK again"


def test_marker_absent_stays_none() -> None:
    stream = ConsoleStream(marker="DONE")
    stream.feed(b"DON")
    stream.feed(b"-X")
    stream.finish()
    assert stream.marker_seconds is None


def test_utf8_split_between_reads_is_not_mangled() -> None:
    text = "µs ✓\n".encode()
    stream = ConsoleStream()
    for i in range(len(text)):
        stream.feed(text[i : i + 1])
    stream.finish()
    assert stream.text == "µs ✓\n"


def test_text_sink_and_callable_sink_both_receive_everything() -> None:
    buffer = io.StringIO()
    pieces: list[str] = []
    for sink in (buffer, pieces.append):
        stream = ConsoleStream(sink)
        stream.feed(b"hello ")
        stream.feed(b"guest")
    assert buffer.getvalue() == "hello guest"
    assert "".join(pieces) == "hello guest"


def test_empty_marker_is_refused() -> None:
    with pytest.raises(ValueError):
        ConsoleStream(marker="")
