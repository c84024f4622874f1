"""The sparse host mapping behind physical memory."""

from __future__ import annotations

import os

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform


def test_a_4gib_board_costs_only_what_is_touched() -> None:
    platform = make_platform(ram_size=4 << 30)
    vm = VirtualMachine.create("vm0", platform, pools=[PoolRequest(30, 3), PoolRequest(24, 2)])
    vm.ram.register_at(0x40000000, 3 << 30, page_bits=21)
    before = platform.physmem.resident_bytes()
    step = 100 * 4096
    for addr in range(0x40000000, 0x40000000 + (3 << 30), step):
        vm.ram.write(addr, b"\xff")
    touched = len(range(0, 3 << 30, step)) * 4096
    resident = platform.physmem.resident_bytes() - before
    assert touched <= resident <= touched + (1 << 20)


def test_file_backed_memory_is_shared_with_other_mappings(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "ram")
    physmem = PhysicalMemory([MemoryRange(0x40000000, 16 << 20)], backing_path=path)
    physmem.view(0x40001000, 5)[:] = b"hello"
    with open(path, "rb") as f:
        f.seek(physmem.file_offset(0x40001000))
        assert f.read(5) == b"hello"
    physmem.close()


def test_overlapping_and_empty_ranges_are_refused() -> None:
    with pytest.raises(Sel4VmmError, match="overlap"):
        PhysicalMemory([MemoryRange(0, 0x2000), MemoryRange(0x1000, 0x2000)])
    with pytest.raises(Sel4VmmError, match="empty"):
        PhysicalMemory([MemoryRange(0, 0)])
    with pytest.raises(Sel4VmmError, match="outside the board"):
        PhysicalMemory([MemoryRange(0, 0x2000)]).view(0x1000, 0x2000)
    with pytest.raises(Sel4VmmError, match="cannot create"):
        PhysicalMemory([MemoryRange(0, 0x2000)], backing_path="/nonexistent/dir/ram")
