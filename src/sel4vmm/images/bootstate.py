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

from collections.abc import Sequence
from dataclasses import dataclass

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.bzimage import BzImageHeader
from sel4vmm.images.placement import RamWindow
from sel4vmm.images.zero_page import (
    ZERO_PAGE_SIZE,
    BootParameters,
    build_zero_page,
    e820_from_ram,
)

#: PSTATE for arm64 entry: D, A, I, F masked (bits 9..6) and mode EL1h (0b0101).
ARM64_PSTATE_EL1H_DAIF_MASKED = 0x3C5
#: CPSR for arm32 entry: SVC mode (0x13) with I and F (bits 7, 6) masked and A (bit 8).
ARM32_CPSR_SVC_MASKED = 0x1D3
#: r1 for a device-tree boot: "machine type" ~0 tells Linux to read the DTB in r2.
ARM32_DT_MACHINE_TYPE = 0xFFFFFFFF


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
    ``(address, size)``.  The page itself is :func:`sel4vmm.images.zero_page.build_zero_page`
    (the one the KVM backend boots with); this adds the command line and checks it
    against the kernel's ``cmdline_size``.
    """
    encoded = cmdline.encode()
    if header.cmdline_size and len(encoded) > header.cmdline_size:
        raise Sel4VmmError(
            f"the kernel command line is {len(encoded)} bytes; this kernel accepts at most "
            f"{header.cmdline_size} (cmdline_size)",
            fix="shorten bootargs",
        )
    cmdline_addr = addr + ZERO_PAGE_SIZE
    start, size = initrd if initrd is not None else (0, 0)
    page = build_zero_page(
        BootParameters(
            e820=e820_from_ram((w.base, w.size) for w in ram),
            cmdline_addr=cmdline_addr,
            initrd_addr=start,
            initrd_size=size,
            setup_header=header.setup_header,
        )
    )
    state = X86BootState(rip=entry, rsi=addr, zero_page_addr=addr, cmdline_addr=cmdline_addr)
    return page + encoded + b"\0", state
