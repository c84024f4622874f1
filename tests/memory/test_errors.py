"""Every refused operation says why, and changes nothing."""

from __future__ import annotations

import pytest

from sel4vmm.errors import AddressSpaceError, Sel4VmmError
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform


def state(vm: VirtualMachine) -> tuple[object, ...]:
    return (
        [(r.start, r.size, r.mapped) for r in vm.memory.reservations()],
        vm.memory.anonymous_regions(),
        [(r.start, r.size, r.allocated) for r in vm.ram.regions()],
        vm.cspace.used,
        vm.resources().objects,
        vm.tables.table_count(),
    )


@pytest.fixture
def vm() -> VirtualMachine:
    vm = VirtualMachine.create("vm0", make_platform(ram_size=256 << 20), pools=[PoolRequest(24, 4)])
    vm.ram.register_at(0x40000000, 0x100000)
    vm.memory.make_anon(0x80000000, 0x100000)
    return vm


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        (lambda vm: vm.memory.reserve_at(0x9000000, 0, None, None), "must not be empty"),
        (lambda vm: vm.memory.reserve_at(0x40080000, 0x10, None, None), "overlaps reservation"),
        # Page-granular, like the C code: a byte range in the last RAM page's page.
        (lambda vm: vm.memory.reserve_at(0x400FFFF0 + 0x10 - 0x8, 4, None, None), "overlaps"),
        (lambda vm: vm.memory.reserve_at(0x80010000, 0x1000, None, None), "anonymous region"),
        (lambda vm: vm.memory.reserve_at(1 << 48, 0x1000, None, None), "48-bit"),
        # C accepts a range whose end wraps past 2^64.
        (lambda vm: vm.memory.reserve_at((1 << 64) - 0x1000, 0x2000, None, None), "48-bit"),
        (lambda vm: vm.memory.reserve_anon(0, 0x1000, None, None), "empty"),
        (lambda vm: vm.memory.reserve_anon(0x1000, -0x1000, None, None), "negative"),
        (lambda vm: vm.memory.reserve_anon(0x200000, 0x1000, None, None), "no anonymous memory"),
        # Alignment larger than the region: C's unsigned arithmetic underflows here.
        (lambda vm: vm.memory.reserve_anon(0x1000, 1 << 36, None, None), "no anonymous memory"),
        (lambda vm: vm.memory.make_anon(0x80080000, 0x1000), "overlaps"),
        (lambda vm: vm.memory.make_anon(0x90000800, 0), "must not be empty"),
        (lambda vm: vm.ram.register_at(0x40000000, 0x1000), "overlaps"),
        (lambda vm: vm.ram.register_at(0x50001000, 0x200000, page_bits=21), "whole number"),
        (lambda vm: vm.ram.register_at(0x50000000, 0), "cannot register 0 bytes"),
        (lambda vm: vm.ram.register_at(0x50000000, 0x1000, page_bits=13), "no 13-bit frames"),
        (lambda vm: vm.ram.register_at(0x50000000, 0x10000000), "needs"),
        (lambda vm: vm.ram.mark_allocated(0x400FF000, 0x2000), "not all of it is registered"),
        (lambda vm: vm.ram.free(0x3FFFF000, 0x1000), "not all of it is registered"),
        (lambda vm: vm.ram.allocate(0x200000), "no free guest RAM"),
        (lambda vm: vm.ram.allocate(-1), "cannot allocate"),
        (lambda vm: vm.ram.write(0x400FFFFF, b"ab"), "not registered guest RAM"),
        (lambda vm: vm.ram.read(0x50000000, 1), "not registered guest RAM"),
        (lambda vm: vm.ram.touch(0x40000000, 0x2000, lambda *a: 1, None), "touch callback failed"),
    ],
)
def test_refused_operations_change_nothing(
    vm: VirtualMachine, operation: object, message: str
) -> None:
    before = state(vm)
    with pytest.raises(Sel4VmmError, match=message) as info:
        operation(vm)  # type: ignore[operator]
    assert info.value.message
    assert state(vm) == before


def test_freeing_twice_is_refused(vm: VirtualMachine) -> None:
    reservation = vm.memory.reserve_at(0x9000000, 0x1000, None, None)
    vm.memory.free(reservation)
    with pytest.raises(AddressSpaceError, match="not a live reservation"):
        vm.memory.free(reservation)


def test_anonymous_reservations_can_be_freed_and_reused(vm: VirtualMachine) -> None:
    first = vm.memory.reserve_anon(0x100000, 0x1000, None, None)
    with pytest.raises(AddressSpaceError):
        vm.memory.reserve_anon(0x1000, 0x1000, None, None)
    vm.memory.free(first)
    again = vm.memory.reserve_anon(0x100000, 0x1000, None, None)
    assert again.start == first.start


def test_ram_register_anywhere_uses_anonymous_memory(vm: VirtualMachine) -> None:
    addr = vm.ram.register(0x8000)
    assert addr == 0x80000000
    vm.ram.write(addr, b"x" * 0x8000)
    assert vm.ram.read(addr + 0x7FFF, 1) == b"x"


def test_ram_free_really_frees(vm: VirtualMachine) -> None:
    a = vm.ram.allocate(0x80000)
    b = vm.ram.allocate(0x80000)
    assert (a, b) == (0x40000000, 0x40080000)
    vm.ram.free(a, 0x80000)
    assert vm.ram.allocate(0x80000) == a
