"""The C-shaped layer: same names, C return conventions, reasons kept."""

from __future__ import annotations

from typing import Any

from sel4vmm import libsel4vm as c
from sel4vmm.memory import MemoryFault
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform


def make_vm() -> VirtualMachine:
    return VirtualMachine.create(
        "vm0", make_platform(ram_size=256 << 20), pools=[PoolRequest(24, 4)]
    )


def test_ram_functions_follow_c_conventions() -> None:
    vm = make_vm()
    assert c.vm_memory_init(vm) == 0
    assert c.vm_ram_register_at(vm, 0x40000000, 0x100000, False) == 0
    assert c.vm_ram_register_at(vm, 0x40000000, 0x100000, False) == -1
    assert "overlaps" in c.vm_last_error(vm)
    c.vm_ram_mark_allocated(vm, 0x40000000, 0x1000)
    assert c.vm_ram_allocate(vm, 0x1000) == 0x40001000
    assert c.vm_ram_allocate(vm, 0x200000) == 0
    c.vm_ram_free(vm, 0x40000000, 0x2000)
    assert c.vm_ram_find_largest_free_region(vm) == (0, 0x40000000, 0x100000)
    buf = bytearray(b"0123456789")
    assert c.vm_ram_touch(vm, 0x40000FFB, 10, c.vm_guest_ram_write_callback, buf) == 0
    out = bytearray(10)
    assert c.vm_ram_touch(vm, 0x40000FFB, 10, c.vm_guest_ram_read_callback, out) == 0
    assert out == buf
    assert c.vm_ram_touch(vm, 0x3FFFFFF0, 10, c.vm_guest_ram_read_callback, out) == -1


def test_reservations_and_faults_through_c_names() -> None:
    vm = make_vm()

    def callback(vm: Any, fault: MemoryFault, cookie: Any) -> c.memory_fault_result_t:
        fault.reply(cookie)
        return c.FAULT_HANDLED

    reservation = c.vm_reserve_memory_at(vm, 0x8000000, 0x10000, callback, 42)
    assert reservation is not None
    assert c.vm_get_reservation_memory_region(reservation) == (0x8000000, 0x10000)
    assert c.vm_reserve_memory_at(vm, 0x8000000, 0x1000, callback, 0) is None
    fault = MemoryFault(0x8000004, 4, False)
    assert vm.memory.handle_fault(fault) is c.FAULT_HANDLED
    assert fault.read_value == 42
    assert c.vm_memory_make_anon(vm, 0x90000000, 0x10000) == 0
    anon, addr = c.vm_reserve_anon_memory(vm, 0x1000, 0x1000, callback, 1)
    assert anon is not None and addr == 0x90000000
    assert c.vm_free_reserved_memory(vm, anon) == 0
    assert c.vm_free_reserved_memory(vm, anon) == -1
    assert c.vm_ram_register(vm, 0x2000) == 0x90000000
    frame = c.vm_frame_t(cptr=0, rights="rw", vaddr=0, size_bits=12)
    assert frame.cptr == 0
