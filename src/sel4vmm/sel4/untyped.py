"""Untyped objects and seL4's retype rules.

An untyped object of ``2**size_bits`` bytes at ``paddr`` hands out memory from a watermark
(seL4's ``FreeIndex``): each retype aligns the watermark up to the new objects' size, places
them there and moves the watermark past them.  What alignment skips is lost until every
child is deleted, when seL4 resets the watermark to zero.  This is why the order and size
of allocations decide how many untyped objects a guest needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sel4vmm.errors import Sel4VmmError


def align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


@dataclass(eq=False)
class Untyped:
    """One untyped capability's object."""

    paddr: int
    size_bits: int
    device: bool
    cptr: int = 0
    watermark: int = 0
    children: int = 0
    #: Bytes skipped by alignment since the last reset.
    lost: int = 0
    label: str = ""
    parent: Untyped | None = field(default=None, repr=False)
    #: Held for an object at a fixed physical address that is not made yet: allocations
    #: "anywhere" pass it by, as the Microkit tool and capDL loader allocate ordinary
    #: objects around fixed-address ones; only :meth:`ObjectAllocator.retype_at` uses it.
    held: bool = False

    def __post_init__(self) -> None:
        if self.paddr % (1 << self.size_bits):
            raise Sel4VmmError(
                f"untyped at {self.paddr:#x} is not aligned to its size 2^{self.size_bits}",
                fix=f"use an address that is a multiple of {1 << self.size_bits:#x}",
            )

    @property
    def size(self) -> int:
        return 1 << self.size_bits

    @property
    def end(self) -> int:
        return self.paddr + self.size

    @property
    def free_bytes(self) -> int:
        return self.size - self.watermark

    def contains(self, paddr: int, size: int = 1) -> bool:
        return self.paddr <= paddr and paddr + size <= self.end

    def fit(self, size_bits: int, count: int) -> int:
        """How many of ``count`` objects of ``2**size_bits`` fit after the watermark."""
        if size_bits > self.size_bits:
            return 0
        start = align_up(self.watermark, 1 << size_bits)
        if start >= self.size:
            return 0
        return min(count, (self.size - start) >> size_bits)

    def place(self, size_bits: int, count: int) -> tuple[int, int]:
        """Retype ``count`` objects: returns (paddr, bytes lost to alignment).

        The caller has checked :meth:`fit`; this only moves the watermark.
        """
        start = align_up(self.watermark, 1 << size_bits)
        lost = start - self.watermark
        self.watermark = start + (count << size_bits)
        self.children += count
        self.lost += lost
        return self.paddr + start, lost

    def __str__(self) -> str:
        kind = "device untyped" if self.device else "untyped"
        return f"{kind} 2^{self.size_bits} at {self.paddr:#x}"


def aligned_blocks(base: int, end: int, max_bits: int, min_bits: int) -> list[tuple[int, int]]:
    """Split ``[base, end)`` into maximal naturally aligned power-of-two blocks.

    This is how seL4 turns free physical memory into untyped objects at boot, and how an
    allocator pads an untyped up to a fixed address: each block is as large as both the
    alignment of its start and the room left allow.  Returns (paddr, size_bits) pairs;
    pieces smaller than ``2**min_bits`` cannot be untyped objects and are dropped.
    """
    blocks: list[tuple[int, int]] = []
    cursor = base
    while cursor < end:
        bits = max_bits
        if cursor:
            bits = min(bits, (cursor & -cursor).bit_length() - 1)
        while bits >= 0 and cursor + (1 << bits) > end:
            bits -= 1
        if bits < min_bits:
            # Skip to the next boundary at which a minimal block can start.
            cursor = align_up(cursor + 1, 1 << min_bits)
            continue
        blocks.append((cursor, bits))
        cursor += 1 << bits
    return blocks
