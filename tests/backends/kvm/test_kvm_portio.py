"""The I/O-port bus: claims, dispatch, floating unclaimed ports, the exit port."""

from __future__ import annotations

import pytest

from sel4vmm.backends.kvm.portio import ExitPort, PortIoBus
from sel4vmm.errors import Sel4VmmError


class Recorder:
    def __init__(self) -> None:
        self.writes: list[tuple[int, int, int]] = []

    def port_read(self, offset: int, width: int) -> int:
        return 0x1_2345_6789 + offset

    def port_write(self, offset: int, width: int, value: int) -> None:
        self.writes.append((offset, width, value))


def test_accesses_reach_the_claiming_device_with_relative_offsets() -> None:
    bus = PortIoBus()
    device = Recorder()
    bus.claim(0x3F8, 8, device, "com1")
    bus.write(0x3FB, 1, 0x83)
    assert device.writes == [(3, 1, 0x83)]
    assert bus.read(0x3F9, 2) == (0x2345_6789 + 1) & 0xFFFF


def test_unclaimed_ports_float_high_and_are_counted() -> None:
    bus = PortIoBus()
    assert bus.read(0x80, 1) == 0xFF
    assert bus.read(0x80, 4) == 0xFFFF_FFFF
    bus.write(0x80, 1, 0)
    assert bus.unclaimed[0x80] == 3


@pytest.mark.parametrize(("first", "count"), [(0x3FC, 8), (0x3F0, 9)])
def test_overlapping_claims_are_refused(first: int, count: int) -> None:
    bus = PortIoBus()
    bus.claim(0x3F8, 8, Recorder(), "com1")
    with pytest.raises(Sel4VmmError, match="overlap com1"):
        bus.claim(first, count, Recorder(), "other")


def test_claims_outside_the_port_space_are_refused() -> None:
    with pytest.raises(Sel4VmmError, match="outside"):
        PortIoBus().claim(0xFFFF, 2, Recorder(), "edge")


def test_exit_port_reports_the_status() -> None:
    codes: list[int] = []
    bus = PortIoBus()
    bus.claim(ExitPort.PORT, 1, ExitPort(codes.append), "exit")
    bus.write(ExitPort.PORT, 4, 42)
    assert codes == [42]
