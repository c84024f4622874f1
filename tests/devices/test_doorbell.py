"""Doorbell devices through the address space's fault dispatch, as a guest reaches them."""

from __future__ import annotations

import pytest

from sel4vmm.devices.doorbell import (
    ACK,
    CHANNELS,
    PENDING,
    RING,
    CrossVmEventBar,
    CrossVmEvents,
    MicrokitDoorbell,
)
from sel4vmm.devices.irq import IrqLine, LineLevels
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform

BASE = 0x0B00_0000
INTID = 82


def _vm(name: str) -> VirtualMachine:
    return VirtualMachine.create(name, make_platform(ram_size=64 << 20), pools=[PoolRequest(20, 2)])


def _pair() -> tuple[
    VirtualMachine, MicrokitDoorbell, VirtualMachine, MicrokitDoorbell, LineLevels, LineLevels
]:
    """alpha's channel 1 is beta's channel 2, as in tests/config/microkit/data."""
    gic_a, gic_b = LineLevels(), LineLevels()
    a = MicrokitDoorbell("alpha", BASE, IrqLine(gic_a, INTID), {})
    b = MicrokitDoorbell("beta", BASE, IrqLine(gic_b, INTID), {2: lambda: a.deliver(1)})
    a.channels[1] = lambda: b.deliver(2)
    vm_a, vm_b = _vm("alpha"), _vm("beta")
    vm_a.memory.reserve_at(BASE, 0x1000, a.fault, label="doorbell")
    vm_b.memory.reserve_at(BASE, 0x1000, b.fault, label="doorbell")
    return vm_a, a, vm_b, b, gic_a, gic_b


def _read(vm: VirtualMachine, offset: int, width: int = 8) -> int:
    fault = MemoryFault(BASE + offset, width, False)
    assert vm.memory.handle_fault(fault) is FaultResult.HANDLED
    assert fault.read_value is not None
    return fault.read_value


def _write(vm: VirtualMachine, offset: int, value: int, width: int = 4) -> FaultResult:
    return vm.memory.handle_fault(MemoryFault(BASE + offset, width, True, value))


def test_a_ring_raises_the_peers_line_and_sets_its_pending_bit() -> None:
    vm_a, a, vm_b, b, gic_a, gic_b = _pair()
    assert _write(vm_a, RING, 1) is FaultResult.HANDLED
    assert gic_b.is_raised(INTID) and not gic_a.is_raised(INTID)
    assert _read(vm_b, PENDING) == 1 << 2
    assert _read(vm_b, PENDING, 4) == 1 << 2
    assert (a.rung, b.received) == (1, 1)


def test_acknowledging_every_pending_bit_lowers_the_line() -> None:
    vm_a, _, vm_b, _, _, gic_b = _pair()
    _write(vm_a, RING, 1)
    assert _write(vm_b, ACK, 1 << 2, 8) is FaultResult.HANDLED
    assert _read(vm_b, PENDING) == 0
    assert gic_b.changes == [(INTID, True), (INTID, False)]


def test_the_answer_comes_back_on_the_other_vm() -> None:
    vm_a, _, vm_b, _, gic_a, _ = _pair()
    _write(vm_a, RING, 1)
    _write(vm_b, RING, 2)
    assert gic_a.is_raised(INTID)
    assert _read(vm_a, PENDING) == 1 << 1


def test_channels_says_what_a_vm_may_ring() -> None:
    vm_a, _, vm_b, _, _, _ = _pair()
    assert _read(vm_a, CHANNELS) == 1 << 1
    assert _read(vm_b, CHANNELS) == 1 << 2
    assert _read(vm_b, CHANNELS + 4, 4) == 0


def test_ringing_a_channel_the_system_does_not_give_stops_the_vm_with_a_reason() -> None:
    vm_a, _, _, b, _, gic_b = _pair()
    assert _write(vm_a, RING, 5) is FaultResult.ERROR
    assert vm_a.memory.last_error == (
        "alpha rang channel 5 through its doorbell at 0xb000000, but its system gives it no "
        "channel 5 to another VM (its channels: [1])"
    )
    assert b.received == 0 and gic_b.changes == []


def test_a_write_to_no_register_is_refused() -> None:
    vm_a, _, _, _, _, _ = _pair()
    assert _write(vm_a, 0x40, 1) is FaultResult.ERROR
    assert "no register there" in vm_a.memory.last_error


def test_channel_ids_are_microkits() -> None:
    with pytest.raises(ValueError, match="63 is not 0 to 62"):
        MicrokitDoorbell("x", BASE, IrqLine(LineLevels(), INTID), {63: lambda: None})


def test_crossvm_event_page_as_cross_vm_connection_c_lays_it_out() -> None:
    gic = LineLevels()
    events = CrossVmEvents(IrqLine(gic, INTID))
    emitted: list[str] = []
    bar0 = CrossVmEventBar(events, "conn_0", BASE, lambda: emitted.append("ready"))
    bar1 = CrossVmEventBar(events, "conn_1", BASE + 0x2000, None)
    vm = _vm("vm0")
    vm.memory.reserve_at(BASE, 0x1000, bar0.fault, label="conn_0 events")
    vm.memory.reserve_at(BASE + 0x2000, 0x1000, bar1.fault, label="conn_1 events")
    # EVENT_BAR_DEVICE_NAME_REGISTER 0x8: the connection's name, NUL padded.
    assert _read(vm, 0x8).to_bytes(8, "little") == b"conn_0\0\0"
    assert _write(vm, 0x0, 0) is FaultResult.HANDLED
    assert emitted == ["ready"]
    bar0.consume()
    assert gic.is_raised(INTID)
    assert _read(vm, 0x4, 4) == 1
    assert _write(vm, 0x4, 0) is FaultResult.HANDLED
    assert not gic.is_raised(INTID)
    # A connection without an emit function: the C code's own message.
    assert _write(vm, 0x2000, 0) is FaultResult.ERROR
    assert vm.memory.last_error.endswith("Connection is not configured with an emit function")
