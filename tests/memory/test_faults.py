"""Fault dispatch: every result, deferred maps, the unhandled handler, broken callbacks."""

from __future__ import annotations

from typing import Any

import pytest

from sel4vmm.errors import AddressSpaceError
from sel4vmm.memory import FaultResult, MemoryFault, VmFrame
from sel4vmm.memory.address_space import frame_iterator
from sel4vmm.sel4.objects import ObjectKind
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform


@pytest.fixture
def vm() -> VirtualMachine:
    return VirtualMachine.create(
        "vm0", make_platform(ram_size=256 << 20), pools=[PoolRequest(24, 4)]
    )


def answer(result: FaultResult, value: int | None = None) -> Any:
    def callback(vm: Any, fault: MemoryFault, cookie: Any) -> FaultResult:
        cookie.append(fault)
        if value is not None:
            fault.reply(value)
        return result

    return callback


@pytest.mark.parametrize(
    "result", [FaultResult.HANDLED, FaultResult.IGNORE, FaultResult.RESTART, FaultResult.ERROR]
)
def test_callback_result_is_returned(vm: VirtualMachine, result: FaultResult) -> None:
    seen: list[MemoryFault] = []
    vm.memory.reserve_at(0x9000000, 0x1000, answer(result, 0x1234), seen)
    fault = MemoryFault(0x9000010, 4, False)
    assert vm.memory.handle_fault(fault) is result
    assert seen == [fault]
    assert fault.read_value == 0x1234


def test_write_fault_carries_width_and_masked_value(vm: VirtualMachine) -> None:
    seen: list[MemoryFault] = []
    vm.memory.reserve_at(0x9000000, 0x1000, answer(FaultResult.HANDLED), seen)
    assert (
        vm.memory.handle_fault(MemoryFault(0x9000004, 2, True, 0x12345678)) is FaultResult.HANDLED
    )
    assert (seen[0].width, seen[0].is_write, seen[0].value) == (2, True, 0x5678)


def test_unclaimed_address_goes_to_the_unhandled_handler(vm: VirtualMachine) -> None:
    fault = MemoryFault(0x5000, 8, False)
    assert vm.memory.handle_fault(fault) is FaultResult.UNHANDLED
    assert "no reservation" in vm.memory.last_error
    seen: list[MemoryFault] = []
    vm.set_unhandled_fault_handler(answer(FaultResult.IGNORE), seen)
    assert vm.memory.handle_fault(fault) is FaultResult.IGNORE
    assert seen == [fault]
    # A handler that cannot handle it either turns UNHANDLED into ERROR.
    vm.set_unhandled_fault_handler(answer(FaultResult.UNHANDLED), [])
    assert vm.memory.handle_fault(fault) is FaultResult.ERROR


def test_callback_unhandled_falls_through_to_the_handler(vm: VirtualMachine) -> None:
    vm.memory.reserve_at(0x9000000, 0x1000, answer(FaultResult.UNHANDLED), [])
    vm.set_unhandled_fault_handler(answer(FaultResult.HANDLED, 7), [])
    fault = MemoryFault(0x9000000, 1, False)
    assert vm.memory.handle_fault(fault) is FaultResult.HANDLED
    assert fault.read_value == 7


def test_broken_callbacks_end_in_error_not_a_crash(vm: VirtualMachine) -> None:
    def raises(vm: Any, fault: MemoryFault, cookie: Any) -> FaultResult:
        raise ZeroDivisionError("device model bug")

    vm.memory.reserve_at(0x9000000, 0x1000, raises, None)
    assert vm.memory.handle_fault(MemoryFault(0x9000000, 4, False)) is FaultResult.ERROR
    assert "ZeroDivisionError" in vm.memory.last_error
    vm.memory.reserve_at(0x9001000, 0x1000, answer(FaultResult.HANDLED), [])
    assert vm.memory.handle_fault(MemoryFault(0x9001000, 4, False)) is FaultResult.ERROR
    assert "without giving a value" in vm.memory.last_error
    vm.memory.reserve_at(0x9002000, 0x1000, None, None)
    assert vm.memory.handle_fault(MemoryFault(0x9002000, 4, True, 1)) is FaultResult.ERROR


def test_deferred_map_happens_on_first_fault_and_restarts(vm: VirtualMachine) -> None:
    frames = vm.allocator.retype(ObjectKind.FRAME, 12, 4)
    reservation = vm.memory.reserve_at(0x50000000, 0x4000, None, None)
    vm.memory.map(reservation, frame_iterator(frames, 0x50000000), None, defer=True)
    assert not reservation.mapped
    assert vm.memory.handle_fault(MemoryFault(0x50002000, 4, False)) is FaultResult.RESTART
    assert reservation.mapped
    assert vm.memory.translate(0x50002000, 4) == [(frames[0].paddr + 0x2000, 4)]


def test_failed_deferred_map_is_an_error_and_can_be_retried(vm: VirtualMachine) -> None:
    frames = vm.allocator.retype(ObjectKind.FRAME, 12, 2)
    reservation = vm.memory.reserve_at(0x50000000, 0x4000, None, None)
    vm.memory.map(reservation, frame_iterator(frames, 0x50000000), None, defer=True)
    assert vm.memory.handle_fault(MemoryFault(0x50000000, 4, False)) is FaultResult.ERROR
    assert "null cap" in vm.memory.last_error
    assert not reservation.mapped
    assert reservation.deferred is not None


def test_partial_map_failure_rolls_back(vm: VirtualMachine) -> None:
    frames = vm.allocator.retype(ObjectKind.FRAME, 12, 8)
    slots_before = vm.cspace.used
    tables_before = vm.tables.table_count()
    reservation = vm.memory.reserve_at(0x60000000, 0x10000, None, None)
    with pytest.raises(AddressSpaceError, match="null cap"):
        vm.memory.map(reservation, frame_iterator(frames, 0x60000000), None)
    assert not reservation.mapped
    assert all(not any(run.mapped or b"") for run in frames)
    assert vm.cspace.used == slots_before
    assert vm.tables.table_count() == tables_before
    # The same frames can be mapped properly afterwards.
    small = vm.memory.reserve_at(0x60100000, 0x8000, None, None)
    vm.memory.map(small, frame_iterator(frames, 0x60100000), None)
    assert small.mapped


def test_iterator_errors_are_caught(vm: VirtualMachine) -> None:
    frames = vm.allocator.retype(ObjectKind.FRAME, 12, 2)
    reservation = vm.memory.reserve_at(0x60000000, 0x2000, None, None)

    def wrong_size(addr: int, cookie: Any) -> VmFrame:
        return VmFrame(frames[0].cptr(0), "rw", addr, 21)

    with pytest.raises(AddressSpaceError, match="not 2\\^21"):
        vm.memory.map(reservation, wrong_size, None)

    def bogus_cap(addr: int, cookie: Any) -> VmFrame:
        return VmFrame(3, "rw", addr, 12)

    with pytest.raises(AddressSpaceError, match="not a frame cap"):
        vm.memory.map(reservation, bogus_cap, None)

    def twice(addr: int, cookie: Any) -> VmFrame:
        return VmFrame(frames[0].cptr(0), "rw", addr, 12)

    with pytest.raises(AddressSpaceError, match="already mapped"):
        vm.memory.map(reservation, twice, None)

    def write_only(addr: int, cookie: Any) -> VmFrame:
        return VmFrame(frames[0].cptr((addr - 0x60000000) >> 12), "w", addr, 12)

    with pytest.raises(AddressSpaceError, match="rights"):
        vm.memory.map(reservation, write_only, None)
    assert not reservation.mapped


def test_listeners_follow_maps_and_frees(vm: VirtualMachine) -> None:
    events: list[tuple[str, int, int]] = []

    class Listener:
        def extent_mapped(self, extent: Any) -> None:
            events.append(("map", extent.guest_addr, extent.size))

        def extent_unmapped(self, extent: Any) -> None:
            events.append(("unmap", extent.guest_addr, extent.size))

    vm.ram.register_at(0x40000000, 0x200000)
    vm.memory.add_listener(Listener())
    assert events == [("map", 0x40000000, 0x200000)]
    frames = vm.allocator.retype(ObjectKind.FRAME, 12, 2)
    reservation = vm.memory.reserve_at(0x70000000, 0x2000, None, None)
    vm.memory.map(reservation, frame_iterator(frames, 0x70000000), None)
    vm.memory.free(reservation)
    assert events[1:] == [("map", 0x70000000, 0x2000), ("unmap", 0x70000000, 0x2000)]


def test_listeners_are_told_when_a_mapping_is_rolled_back(vm: VirtualMachine) -> None:
    events: list[str] = []

    class Listener:
        def extent_mapped(self, extent: Any) -> None:
            events.append(f"map {extent.guest_addr:#x}")

        def extent_unmapped(self, extent: Any) -> None:
            events.append(f"unmap {extent.guest_addr:#x}")

    vm.memory.add_listener(Listener())
    with pytest.raises(RuntimeError), vm.undo.transaction():
        vm.ram.register_at(0x40000000, 0x10000)
        raise RuntimeError("a later step of the same operation failed")
    assert events == ["map 0x40000000", "unmap 0x40000000"]
    assert vm.memory.reservations() == []


def test_an_address_beside_a_sub_page_reservation_is_not_cached_as_its_own(
    vm: VirtualMachine,
) -> None:
    seen: list[MemoryFault] = []
    vm.memory.reserve_at(0x9000010, 0x10, answer(FaultResult.HANDLED, 1), seen)
    for _ in range(2):  # the second round would hit a wrongly filled page cache
        assert vm.memory.handle_fault(MemoryFault(0x9000014, 4, False)) is FaultResult.HANDLED
        assert vm.memory.handle_fault(MemoryFault(0x9000000, 4, False)) is FaultResult.UNHANDLED
        assert vm.memory.handle_fault(MemoryFault(0x9000020, 4, False)) is FaultResult.UNHANDLED
    assert len(seen) == 2


def test_the_answering_reservation_is_recorded_on_the_cached_and_first_paths(
    vm: VirtualMachine,
) -> None:
    seen: list[MemoryFault] = []
    reservation = vm.memory.reserve_at(0x9000000, 0x1000, answer(FaultResult.HANDLED, 1), seen)
    first, cached = MemoryFault(0x9000000, 4, False), MemoryFault(0x9000004, 4, False)
    assert vm.memory.handle_fault(first) is FaultResult.HANDLED  # fills the page cache
    assert vm.memory.handle_fault(cached) is FaultResult.HANDLED  # the hot path
    assert first.reservation is reservation and cached.reservation is reservation
    nobody = MemoryFault(0x5000, 4, False)
    assert vm.memory.handle_fault(nobody) is FaultResult.UNHANDLED
    assert nobody.reservation is None


def test_a_deferred_map_made_after_the_page_was_cached_still_runs(vm: VirtualMachine) -> None:
    seen: list[MemoryFault] = []
    reservation = vm.memory.reserve_at(0x9000000, 0x1000, answer(FaultResult.HANDLED, 1), seen)
    assert vm.memory.handle_fault(MemoryFault(0x9000000, 4, False)) is FaultResult.HANDLED
    runs = vm.allocator.retype(ObjectKind.FRAME, 12, 1)
    vm.memory.map(reservation, frame_iterator(runs, 0x9000000), defer=True)
    assert vm.memory.handle_fault(MemoryFault(0x9000000, 4, False)) is FaultResult.RESTART
    assert reservation.mapped


def test_a_map_iterator_that_raises_ends_the_fault_in_error(vm: VirtualMachine) -> None:
    reservation = vm.memory.reserve_at(0x9000000, 0x1000, None, None)

    def broken(addr: int, cookie: Any) -> VmFrame:
        raise ZeroDivisionError("iterator bug")

    vm.memory.map(reservation, broken, defer=True)
    assert vm.memory.handle_fault(MemoryFault(0x9000000, 4, False)) is FaultResult.ERROR
    assert "map iterator raised ZeroDivisionError: iterator bug" in vm.memory.last_error
    assert reservation.deferred is not None and not reservation.mapped


def test_a_cached_anonymous_page_still_refuses_an_access_past_its_end(
    vm: VirtualMachine,
) -> None:
    # libsel4vm (seL4_projects_libs libsel4vm/src/guest_memory.c at 0e06beb,
    # find_anon_reservation_by_addr, modelled in tests/memory/c_reference.py): an
    # anonymous sub-reservation holds an access only when the whole access lies inside
    # it, so the page cache's hot path (which skips the range check) must never serve one.
    seen: list[MemoryFault] = []
    vm.memory.make_anon(0x9000000, 0x2000)
    reservation = vm.memory.reserve_anon(0x1000, 0, answer(FaultResult.HANDLED, 7), seen)
    last = reservation.end - 4
    for _ in range(2):  # the second round runs with the page cached
        inside = MemoryFault(last, 4, False)
        assert vm.memory.handle_fault(inside) is FaultResult.HANDLED
        assert inside.read_value == 7 and inside.reservation is reservation
        across = MemoryFault(last, 8, False)
        assert vm.memory.handle_fault(across) is FaultResult.UNHANDLED
        assert across.reservation is None
    assert len(seen) == 2
