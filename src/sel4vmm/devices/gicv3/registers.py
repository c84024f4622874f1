"""Turning guest accesses of any width into the 32-bit register accesses the model serves.

The GICv3 registers are 32 bits wide, except the 64-bit GICD_IROUTER<n> and GICR_TYPER (which
may also be accessed as two 32-bit halves) and the byte-accessible
GICD_IPRIORITYR/GICR_IPRIORITYR (IHI 0069, each register's "Accessing" notes).  Each frame
implements ``read32(offset)`` and ``write32(offset, value, mask)``: ``mask`` has ones at the
bytes the guest wrote, so a byte store to a priority changes that byte only and a byte store to
a set-enable register sets only the bits it carries.
"""

from __future__ import annotations

from collections.abc import Callable

from sel4vmm.memory import FaultResult, MemoryFault

Read32 = Callable[[int], int]
Write32 = Callable[[int, int, int], None]


def read_access(read32: Read32, offset: int, width: int) -> int:
    """A load of ``width`` bytes at ``offset`` (naturally aligned, at most 8 bytes)."""
    if width == 8:
        return read32(offset) | read32(offset + 4) << 32
    shift = 8 * (offset & 3)
    return read32(offset & ~3) >> shift & ((1 << (8 * width)) - 1)


def write_access(write32: Write32, offset: int, width: int, value: int) -> None:
    """A store of ``width`` bytes at ``offset`` (naturally aligned, at most 8 bytes)."""
    if width == 8:
        write32(offset, value & 0xFFFF_FFFF, 0xFFFF_FFFF)
        write32(offset + 4, value >> 32 & 0xFFFF_FFFF, 0xFFFF_FFFF)
        return
    shift = 8 * (offset & 3)
    mask = ((1 << (8 * width)) - 1) << shift
    write32(offset & ~3, value << shift & mask, mask)


def serve_fault(fault: MemoryFault, offset: int, read32: Read32, write32: Write32) -> FaultResult:
    """Answer one trapped access to a GIC frame.

    A 16-byte access or one not aligned to its width cannot be a GIC register access (an
    AArch64 guest's unaligned access to Device memory faults in the guest itself): the
    VM is stopped with ERROR rather than given a made-up answer.
    """
    if fault.width > 8 or offset % fault.width:
        return FaultResult.ERROR
    if fault.is_write:
        write_access(write32, offset, fault.width, fault.value)
    else:
        fault.reply(read_access(read32, offset, fault.width))
    return FaultResult.HANDLED


def bits_of(flags: list[bool]) -> int:
    """Up to 32 flags as a register value, flag ``i`` in bit ``i``."""
    value = 0
    for i, flag in enumerate(flags):
        if flag:
            value |= 1 << i
    return value
