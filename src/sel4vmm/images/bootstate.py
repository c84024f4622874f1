"""The vCPU state and boot data a kernel expects at its first instruction.

arm64 (Documentation/arm64/booting.rst): ``x0`` = physical address of the DTB, ``x1``-``x3``
= 0, MMU and D-cache off, all of DAIF masked, entered at EL1 (the guest's highest level
under seL4's hypervisor) on the SP_EL1 stack - PSTATE ``EL1h`` = 0b0101, so PSTATE = 0x3c5.
arm32 (Documentation/arm/booting.rst): ``r0`` = 0, ``r1`` = machine type (~0 for device-tree
boots), ``r2`` = DTB address, SVC mode with IRQs and FIQs masked.

x86_64 (Documentation/x86/boot.rst "64-bit boot protocol"): long mode, ``rip`` = load address
+ 0x200, ``rsi`` = address of a *zero page* (``struct boot_params``) holding a copy of the
kernel's setup header with the loader fields filled in (``type_of_loader``, ``cmd_line_ptr``,
``ramdisk_image``/``ramdisk_size``) and the e820 memory map built from guest RAM.  The
identity page tables and GDT the 64-bit entry also needs belong to the CPU backend.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.bzimage import SETUP_HEADER_OFFSET, BzImageHeader
from sel4vmm.images.placement import RamWindow

#: PSTATE for arm64 entry: D, A, I, F masked (bits 9..6) and mode EL1h (0b0101).
ARM64_PSTATE_EL1H_DAIF_MASKED = 0x3C5
#: CPSR for arm32 entry: SVC mode (0x13) with I and F (bits 7, 6) masked and A (bit 8).
ARM32_CPSR_SVC_MASKED = 0x1D3
#: r1 for a device-tree boot: "machine type" ~0 tells Linux to read the DTB in r2.
ARM32_DT_MACHINE_TYPE = 0xFFFFFFFF

ZERO_PAGE_SIZE = 0x1000
#: ``struct boot_params`` offsets (Documentation/x86/zero-page.rst).
_EXT_RAMDISK_IMAGE = 0x0C0
_EXT_RAMDISK_SIZE = 0x0C4
_EXT_CMD_LINE_PTR = 0x0C8
_E820_ENTRIES = 0x1E8
_E820_TABLE = 0x2D0
E820_MAX_ENTRIES = 128
E820_RAM = 1
#: Setup-header fields, as offsets into the zero page (same as in the bzImage file).
_VID_MODE = 0x1FA
_TYPE_OF_LOADER = 0x210
_RAMDISK_IMAGE = 0x218
_RAMDISK_SIZE = 0x21C
_CMD_LINE_PTR = 0x228
#: "Undefined" boot loader id: sel4vmm has no assigned loader number (libvmm uses the same).
TYPE_OF_LOADER_UNDEFINED = 0xFF
VID_MODE_NORMAL = 0xFFFF


@dataclass(frozen=True)
class Arm64BootState:
    pc: int
    x0: int
    x1: int = 0
    x2: int = 0
    x3: int = 0
    pstate: int = ARM64_PSTATE_EL1H_DAIF_MASKED

    def registers(self) -> dict[str, int]:
        return {
            "pc": self.pc,
            "x0": self.x0,
            "x1": self.x1,
            "x2": self.x2,
            "x3": self.x3,
            "pstate": self.pstate,
        }


@dataclass(frozen=True)
class Arm32BootState:
    pc: int
    r0: int = 0
    r1: int = ARM32_DT_MACHINE_TYPE
    r2: int = 0
    cpsr: int = ARM32_CPSR_SVC_MASKED

    def registers(self) -> dict[str, int]:
        return {"pc": self.pc, "r0": self.r0, "r1": self.r1, "r2": self.r2, "cpsr": self.cpsr}


@dataclass(frozen=True)
class X86BootState:
    rip: int
    rsi: int
    zero_page_addr: int
    cmdline_addr: int

    def registers(self) -> dict[str, int]:
        return {"rip": self.rip, "rsi": self.rsi}


def arm64_boot_state(entry: int, dtb_addr: int | None) -> Arm64BootState:
    """The entry registers; a guest without a DTB gets x0 = 0 (booting.rst allows nothing
    else, so callers should warn)."""
    return Arm64BootState(pc=entry, x0=dtb_addr or 0)


def arm32_boot_state(entry: int, dtb_addr: int | None) -> Arm32BootState:
    return Arm32BootState(pc=entry, r2=dtb_addr or 0)


def x86_boot_data_size(cmdline: str) -> int:
    """Bytes the zero page and the command line after it take."""
    return ZERO_PAGE_SIZE + len(cmdline.encode()) + 1


def build_x86_boot_data(
    header: BzImageHeader,
    *,
    addr: int,
    entry: int,
    ram: Sequence[RamWindow],
    cmdline: str,
    initrd: tuple[int, int] | None,
) -> tuple[bytes, X86BootState]:
    """The zero page (at ``addr``) followed by the NUL-terminated command line.

    ``entry`` is the 64-bit entry (kernel load address + 0x200); ``initrd`` is
    ``(address, size)``.  Raises if the command line is longer than the kernel
    accepts (``cmdline_size``) or RAM needs more e820 entries than the zero page holds.
    """
    encoded = cmdline.encode()
    if header.cmdline_size and len(encoded) > header.cmdline_size:
        raise Sel4VmmError(
            f"the kernel command line is {len(encoded)} bytes; this kernel accepts at most "
            f"{header.cmdline_size} (cmdline_size)",
            fix="shorten bootargs",
        )
    if len(ram) > E820_MAX_ENTRIES:
        raise Sel4VmmError(
            f"{len(ram)} RAM windows do not fit the zero page's {E820_MAX_ENTRIES} e820 entries",
            fix="merge adjacent RAM regions",
        )
    page = bytearray(ZERO_PAGE_SIZE)
    setup = header.setup_header
    page[SETUP_HEADER_OFFSET : SETUP_HEADER_OFFSET + len(setup)] = setup
    cmdline_addr = addr + ZERO_PAGE_SIZE
    struct.pack_into("<H", page, _VID_MODE, VID_MODE_NORMAL)
    page[_TYPE_OF_LOADER] = TYPE_OF_LOADER_UNDEFINED
    struct.pack_into("<I", page, _CMD_LINE_PTR, cmdline_addr & 0xFFFFFFFF)
    struct.pack_into("<I", page, _EXT_CMD_LINE_PTR, cmdline_addr >> 32)
    if initrd is not None:
        start, size = initrd
        struct.pack_into("<I", page, _RAMDISK_IMAGE, start & 0xFFFFFFFF)
        struct.pack_into("<I", page, _RAMDISK_SIZE, size & 0xFFFFFFFF)
        struct.pack_into("<I", page, _EXT_RAMDISK_IMAGE, start >> 32)
        struct.pack_into("<I", page, _EXT_RAMDISK_SIZE, size >> 32)
    windows = sorted(ram, key=lambda w: w.base)
    page[_E820_ENTRIES] = len(windows)
    for index, window in enumerate(windows):
        struct.pack_into("<QQI", page, _E820_TABLE + 20 * index, window.base, window.size, E820_RAM)
    state = X86BootState(
        rip=entry,
        rsi=addr,
        zero_page_addr=addr,
        cmdline_addr=cmdline_addr,
    )
    return bytes(page) + encoded + b"\0", state


def read_e820(zero_page: bytes) -> list[tuple[int, int, int]]:
    """``(base, size, type)`` entries of a zero page (for checks and reports)."""
    count = zero_page[_E820_ENTRIES]
    return [struct.unpack_from("<QQI", zero_page, _E820_TABLE + 20 * i) for i in range(count)]
