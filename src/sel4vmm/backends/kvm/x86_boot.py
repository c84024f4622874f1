"""Starting an x86_64 vCPU directly in 64-bit mode, as the Linux 64-bit boot protocol asks.

``Documentation/arch/x86/boot.rst`` ("64-bit Boot Protocol") says the kernel's 64-bit entry
expects: long mode with paging on, an identity mapping covering the kernel, the zero page
and the command line, a GDT whose selectors ``__BOOT_CS`` (0x10) and ``__BOOT_DS`` (0x18)
are flat 4 GiB code (with L set) and data segments, interrupts off, and ``%rsi`` holding the
zero page's address.  We skip real mode and the BIOS entirely, so the VMM builds those boot
page tables and that GDT in guest RAM and loads the vCPU's registers to match.  The test
guests are entered the same way (with their parameters in ``%rdi``), so every guest shares
one well-tested entry path.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sel4vmm.backends.kvm.ioctls import KvmRegs, KvmSegment, KvmSregs
from sel4vmm.errors import Sel4VmmError

#: ``write(guest_addr, data)``: how boot structures get into guest RAM (``GuestRam.write``).
GuestWriter = Callable[[int, bytes], None]

BOOT_CS: Final = 0x10
BOOT_DS: Final = 0x18
BOOT_TSS: Final = 0x20

_GIB: Final = 1 << 30
_LARGE_PAGE: Final = 1 << 21
_PAGE: Final = 0x1000

# Paging-entry bits: present, writable, page size (2 MiB leaf in a page directory).
_PTE_PRESENT: Final = 1 << 0
_PTE_WRITABLE: Final = 1 << 1
_PTE_LARGE: Final = 1 << 7

# Control-register bits we set (and why):
_CR0_PE: Final = 1 << 0  # protected mode: required for long mode
_CR0_MP: Final = 1 << 1  # WAIT honours TS: required with NE for SSE
_CR0_ET: Final = 1 << 4  # hard-wired to 1 on every x86 since the 486
_CR0_NE: Final = 1 << 5  # native x87 error reporting (VMX requires it)
_CR0_WP: Final = 1 << 16  # supervisor writes honour read-only pages
_CR0_PG: Final = 1 << 31  # paging: required for long mode
_CR4_PAE: Final = 1 << 5  # long mode uses PAE-format tables
_CR4_OSFXSR: Final = 1 << 9  # the OS saves SSE state: compilers emit SSE freely
_CR4_OSXMMEXCPT: Final = 1 << 10
_EFER_LME: Final = 1 << 8
_EFER_LMA: Final = 1 << 10

#: Flat segment descriptors: 64-bit code (L=1, D=0) and read/write data.
_GDT_CODE64: Final = 0x00AF_9B00_0000_FFFF
_GDT_DATA: Final = 0x00CF_9300_0000_FFFF


@dataclass(frozen=True)
class LongModeLayout:
    """Where the boot page tables and GDT go in guest RAM, and how much is identity-mapped.

    Identity-mapping whole gigabytes with 2 MiB pages needs one PML4, one PDPT per 512 GiB
    and one page directory per GiB, so 4 GiB (RAM plus the 32-bit MMIO hole where devices
    sit) costs six pages.
    """

    gdt_addr: int = 0x500
    page_tables_addr: int = 0x9000
    identity_map_bytes: int = 4 * _GIB

    def __post_init__(self) -> None:
        if self.identity_map_bytes % _GIB or not 0 < self.identity_map_bytes <= 512 * _GIB:
            raise Sel4VmmError(
                f"the boot identity map must be a whole number of GiB up to 512 GiB, "
                f"not {self.identity_map_bytes:#x}",
                fix="round the identity-mapped size up to a GiB",
            )
        if self.page_tables_addr % _PAGE:
            raise Sel4VmmError(
                f"boot page tables at {self.page_tables_addr:#x} are not page aligned",
                fix="place them on a 4 KiB boundary",
            )

    @property
    def directory_count(self) -> int:
        return self.identity_map_bytes // _GIB

    @property
    def page_tables_size(self) -> int:
        """PML4 + PDPT + one page directory per identity-mapped GiB."""
        return (2 + self.directory_count) * _PAGE

    @property
    def gdt_size(self) -> int:
        return 5 * 8

    def footprint(self) -> list[tuple[int, int]]:
        """The guest ranges this layout writes (the caller reserves them in guest RAM)."""
        return [(self.gdt_addr, self.gdt_size), (self.page_tables_addr, self.page_tables_size)]


def build_page_tables(layout: LongModeLayout) -> bytes:
    """Identity map ``[0, identity_map_bytes)`` with 2 MiB pages: PML4, PDPT, directories."""
    base = layout.page_tables_addr
    pdpt_addr = base + _PAGE
    table_flags = _PTE_PRESENT | _PTE_WRITABLE
    pml4 = struct.pack("<Q", pdpt_addr | table_flags).ljust(_PAGE, b"\0")
    pdpt_entries = [
        (base + (2 + gib) * _PAGE) | table_flags for gib in range(layout.directory_count)
    ]
    pdpt = struct.pack(f"<{len(pdpt_entries)}Q", *pdpt_entries).ljust(_PAGE, b"\0")
    leaf_flags = _PTE_PRESENT | _PTE_WRITABLE | _PTE_LARGE
    directories = b"".join(
        struct.pack("<512Q", *((gib * _GIB + i * _LARGE_PAGE) | leaf_flags for i in range(512)))
        for gib in range(layout.directory_count)
    )
    return pml4 + pdpt + directories


def build_gdt() -> bytes:
    """Null, null, ``__BOOT_CS``, ``__BOOT_DS`` and an (unused) TSS slot."""
    return struct.pack("<5Q", 0, 0, _GDT_CODE64, _GDT_DATA, 0)


def _segment(selector: int, *, code: bool) -> KvmSegment:
    return KvmSegment(
        base=0,
        limit=0xFFFF_FFFF,
        selector=selector,
        type=0xB if code else 0x3,  # execute/read accessed, read/write accessed
        present=1,
        dpl=0,
        db=0 if code else 1,
        s=1,
        l=1 if code else 0,
        g=1,
    )


def long_mode_sregs(sregs: KvmSregs, layout: LongModeLayout) -> None:
    """Fill ``sregs`` (as read from the vCPU) for 64-bit mode on ``layout``'s tables."""
    code = _segment(BOOT_CS, code=True)
    data = _segment(BOOT_DS, code=False)
    sregs.cs = code
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data
    # VMX insists on a usable busy TSS in TR even though nothing here switches stacks.
    sregs.tr = KvmSegment(base=0, limit=0x67, selector=BOOT_TSS, type=0xB, present=1, s=0)
    sregs.gdt.base = layout.gdt_addr
    sregs.gdt.limit = layout.gdt_size - 1
    sregs.idt.base = 0
    sregs.idt.limit = 0
    sregs.cr0 = _CR0_PE | _CR0_MP | _CR0_ET | _CR0_NE | _CR0_WP | _CR0_PG
    sregs.cr3 = layout.page_tables_addr
    sregs.cr4 = _CR4_PAE | _CR4_OSFXSR | _CR4_OSXMMEXCPT
    sregs.efer = _EFER_LME | _EFER_LMA


@dataclass(frozen=True)
class EntryState:
    """The general registers a guest starts with (everything else is zero)."""

    rip: int
    rsp: int = 0
    rsi: int = 0
    rdi: int = 0


def entry_regs(state: EntryState) -> KvmRegs:
    """Registers for the entry: interrupts off (rflags bit 1 is reserved-one)."""
    return KvmRegs(rip=state.rip, rsp=state.rsp, rsi=state.rsi, rdi=state.rdi, rflags=0x2)


def write_long_mode_tables(layout: LongModeLayout, write: GuestWriter) -> None:
    """Put the GDT and the identity-mapping tables into guest RAM."""
    write(layout.gdt_addr, build_gdt())
    write(layout.page_tables_addr, build_page_tables(layout))
