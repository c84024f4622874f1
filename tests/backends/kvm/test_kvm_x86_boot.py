"""Boot page tables, GDT and the 64-bit register state of the Linux 64-bit boot protocol."""

from __future__ import annotations

import struct

import pytest

from sel4vmm.backends.kvm import x86_boot
from sel4vmm.backends.kvm.ioctls import KvmSregs
from sel4vmm.errors import Sel4VmmError


def walk(tables: bytes, layout: x86_boot.LongModeLayout, vaddr: int) -> int | None:
    """Translate ``vaddr`` through ``tables`` as the MMU would (2 MiB leaves only)."""

    def entry(table_addr: int, index: int) -> int:
        offset = table_addr - layout.page_tables_addr + index * 8
        value: int = struct.unpack_from("<Q", tables, offset)[0]
        return value

    pml4e = entry(layout.page_tables_addr, (vaddr >> 39) & 0x1FF)
    if not pml4e & 1:
        return None
    pdpte = entry(pml4e & ~0xFFF, (vaddr >> 30) & 0x1FF)
    if not pdpte & 1:
        return None
    pde = entry(pdpte & ~0xFFF, (vaddr >> 21) & 0x1FF)
    if not pde & 1 or not pde & 0x80:
        return None
    return (pde & ~0x1F_FFFF & ((1 << 52) - 1)) | (vaddr & 0x1F_FFFF)


@pytest.mark.parametrize("gib", [1, 4, 6])
def test_tables_identity_map_exactly_the_requested_gigabytes(gib: int) -> None:
    layout = x86_boot.LongModeLayout(identity_map_bytes=gib << 30)
    tables = x86_boot.build_page_tables(layout)
    assert len(tables) == layout.page_tables_size == (2 + gib) * 0x1000
    for vaddr in (0, 0x1234_5678 % (gib << 30), (gib << 30) - 1, 0x20_0000 + 0x42):
        assert walk(tables, layout, vaddr) == vaddr
    assert walk(tables, layout, gib << 30) is None


def test_gdt_has_the_boot_protocol_selectors() -> None:
    gdt = struct.unpack("<5Q", x86_boot.build_gdt())
    code, data = gdt[x86_boot.BOOT_CS // 8], gdt[x86_boot.BOOT_DS // 8]
    assert code >> 53 & 1 == 1  # L: 64-bit code
    assert code >> 43 & 1 == 1  # executable
    assert data >> 43 & 1 == 0 and data >> 41 & 1 == 1  # writable data
    assert (code >> 47 & 1, data >> 47 & 1) == (1, 1)  # present


def test_sregs_enter_long_mode_on_the_layout() -> None:
    layout = x86_boot.LongModeLayout(gdt_addr=0x800, page_tables_addr=0x10000)
    sregs = KvmSregs()
    x86_boot.long_mode_sregs(sregs, layout)
    assert sregs.cr3 == 0x10000 and sregs.gdt.base == 0x800
    assert sregs.cr0 & 0x8000_0001 == 0x8000_0001  # PG and PE
    assert sregs.cr4 & 0x20 and sregs.efer & 0x500 == 0x500  # PAE, LME + LMA
    assert (sregs.cs.selector, sregs.cs.l, sregs.ds.selector) == (0x10, 1, 0x18)


def test_entry_registers_have_interrupts_off() -> None:
    regs = x86_boot.entry_regs(x86_boot.EntryState(rip=0x100200, rsp=0x8000, rsi=0x7000))
    assert (regs.rip, regs.rsp, regs.rsi, regs.rflags) == (0x100200, 0x8000, 0x7000, 0x2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"identity_map_bytes": 3 << 29}, "whole number of GiB"),
        ({"identity_map_bytes": 0}, "whole number of GiB"),
        ({"page_tables_addr": 0x9010}, "not page aligned"),
    ],
)
def test_bad_layouts_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(Sel4VmmError, match=message):
        x86_boot.LongModeLayout(**kwargs)
