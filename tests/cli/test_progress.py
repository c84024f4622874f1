"""The heartbeat long waits print (issue 12: kvm-boot printed one line in 300 s)."""

from __future__ import annotations

import io
import time

from sel4vmm.cli.progress import Heartbeat


def test_heartbeat_says_the_guest_runs_and_when_it_stops() -> None:
    stream = io.StringIO()
    printed = [0]
    with Heartbeat("kvm-boot", 300.0, lambda: printed[0], interval=0.05, stream=stream):
        printed[0] = 1234
        deadline = time.monotonic() + 10
        while "1234 console bytes" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    line = stream.getvalue().splitlines()[-1]
    assert line.startswith("[kvm-boot: running ")
    assert line.endswith(" s, 1234 console bytes, stops at 300 s (--timeout)]")


def test_heartbeat_without_a_limit_says_none() -> None:
    beat = Heartbeat("run", None, lambda: 0)
    assert beat.line(12.4) == "[run: running 12 s, 0 console bytes]"
