"""Reservations of guest-physical address space, and what is mapped in them."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sel4vmm.memory.faults import FaultCallback


@dataclass(frozen=True)
class VmFrame:
    """libsel4vm's ``vm_frame_t``: a frame cap to map at ``vaddr`` with ``rights``.

    ``cptr`` 0 (``seL4_CapNull``) tells :meth:`GuestAddressSpace.map` the iterator failed.
    """

    cptr: int
    rights: str
    vaddr: int
    size_bits: int


#: ``iterator(addr, cookie) -> VmFrame`` — libsel4vm's ``memory_map_iterator_fn``.
MapIterator = Callable[[int, Any], VmFrame]


@dataclass
class MappedExtent:
    """A guest-physical window backed by physically contiguous frames."""

    guest_addr: int
    size: int
    paddr: int
    page_bits: int
    writable: bool = True
    executable: bool = True
    device: bool = False

    @property
    def guest_end(self) -> int:
        return self.guest_addr + self.size

    def translate(self, guest_addr: int) -> int:
        return self.paddr + (guest_addr - self.guest_addr)


@dataclass(eq=False, slots=True)
class Reservation:
    """A reserved guest-physical range (``vm_memory_reservation_t``)."""

    start: int
    size: int
    callback: FaultCallback | None = None
    cookie: Any = None
    anonymous: bool = False
    #: A map requested with ``defer=True`` that waits for the first fault.  Kept next to
    #: ``callback``, ``cookie`` and ``anonymous``: fault dispatch's hot path reads those
    #: four, and slots are laid out in field order, so they share a cache line.
    deferred: tuple[MapIterator, Any] | None = None
    #: Frames mapped in this reservation, sorted by guest address, coalesced.
    extents: list[MappedExtent] = field(default_factory=list)
    #: Frame caps this reservation mapped (first cptr, count) so they can be unmapped.
    mapped_caps: list[tuple[int, int]] = field(default_factory=list)
    label: str = ""
    #: ``start + size``, kept as a field: fault dispatch compares against it every time.
    end: int = field(init=False)

    def __post_init__(self) -> None:
        self.end = self.start + self.size

    @property
    def mapped(self) -> bool:
        return bool(self.extents)

    def extent_at(self, addr: int) -> MappedExtent | None:
        """The mapped extent containing ``addr`` (bisection over the sorted extents)."""
        index = bisect.bisect_right(self.extents, addr, key=lambda e: e.guest_addr) - 1
        if index >= 0 and addr < self.extents[index].guest_end:
            return self.extents[index]
        return None

    def region(self) -> tuple[int, int]:
        """``vm_get_reservation_memory_region``: (address, size)."""
        return self.start, self.size

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def __str__(self) -> str:
        name = f" {self.label}" if self.label else ""
        return f"reservation{name} [{self.start:#x}, {self.end:#x})"
