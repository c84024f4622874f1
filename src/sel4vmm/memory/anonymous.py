"""Anonymous guest memory: libsel4vm's ``vm_memory_make_anon`` regions and the allocator
``vm_reserve_anon_memory`` uses inside them.

libsel4vm (``guest_memory.c``, seL4_projects_libs) keeps a *bump pointer* per anonymous
region (``alloc_addr``): a request of ``size`` bytes aligned to ``align`` goes to the first
region, in address order, where ``ROUND_UP(alloc_addr, align) + ROUND_UP(size, 4 KiB)`` still
fits, and the pointer moves past it.  A reservation never spans two regions, even adjacent
ones, and the space alignment skips is never used.  This module gives exactly those
addresses, so a VMM ported from C sees the same guest-physical layout.

Two departures, both fixes: C's fit test ``size <= region.size - (aligned - region.addr)``
underflows when the alignment lands past the region's end and then hands out memory outside
the region — here the end points are compared instead; and C cannot free anonymous
reservations at all — here freed space is kept per region and reused, first fit, but only
when the bump allocation fails everywhere, so every sequence C can run still gets C's
address.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from functools import partial

from sel4vmm.errors import AddressSpaceError
from sel4vmm.sel4.undo import UndoLog


def round_up(value: int, boundary: int) -> int:
    """libutils' ``ROUND_UP(n, b)``: the next multiple of ``b`` (any ``b``, by modulo)."""
    remainder = value % boundary
    return value if remainder == 0 else value + boundary - remainder


@dataclass
class AnonRegion:
    """One ``vm_memory_make_anon`` region: exact bounds (C keeps the caller's numbers)."""

    start: int
    size: int
    #: C's ``alloc_addr``: where the next bump allocation starts looking.
    bump: int
    #: Space given back by freed reservations: sorted, coalesced (start, end) pairs.
    freed: list[tuple[int, int]] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + self.size


class AnonymousMemory:
    """Every anonymous region of one VM and the allocation inside them."""

    def __init__(self, undo: UndoLog, page_size: int) -> None:
        self.undo = undo
        self.page_size = page_size
        self._starts: list[int] = []
        self._regions: list[AnonRegion] = []

    def regions(self) -> list[tuple[int, int]]:
        """(start, end) of every region, in address order."""
        return [(r.start, r.end) for r in self._regions]

    def add(self, start: int, size: int) -> None:
        """A new region (the caller has checked it overlaps nothing)."""
        region = AnonRegion(start, size, start)
        index = bisect.bisect_left(self._starts, start)
        self._starts.insert(index, start)
        self._regions.insert(index, region)
        self.undo.record(partial(self._drop, region))

    def _drop(self, region: AnonRegion) -> None:
        index = self._regions.index(region)
        del self._starts[index]
        del self._regions[index]

    def region_at(self, addr: int) -> AnonRegion | None:
        """The region containing ``addr`` (exact bounds, as C's reservation tree)."""
        index = bisect.bisect_right(self._starts, addr) - 1
        if index >= 0 and addr < self._regions[index].end:
            return self._regions[index]
        return None

    def overlapping(self, lo: int, hi: int) -> AnonRegion | None:
        """A region sharing a page with the page-aligned span ``[lo, hi)``, if any."""
        index = bisect.bisect_left(self._starts, hi)
        if index > 0:
            region = self._regions[index - 1]
            if round_up(region.end, self.page_size) > lo:
                return region
        return None

    # -- allocation --------------------------------------------------------------------
    def allocate(self, size: int, align: int) -> int:
        """C's address for ``size`` bytes aligned to ``align``; the space is then taken.

        The space taken is ``size`` rounded up to whole pages, as C's ``alloc_addr``
        advances; the reservation itself keeps the caller's ``size``.
        """
        taken = round_up(size, self.page_size)
        for region in self._regions:
            aligned = round_up(region.bump, align)
            if aligned + taken <= region.end:
                self._set_bump(region, aligned + taken)
                return aligned
        for region in self._regions:
            for lo, hi in region.freed:
                aligned = round_up(lo, align)
                if aligned + taken <= hi:
                    self._take_freed(region, aligned, aligned + taken)
                    return aligned
        largest = max((self._largest_free(r) for r in self._regions), default=0)
        raise AddressSpaceError(
            f"no anonymous memory for {size:#x} bytes aligned to {align:#x} "
            f"(largest free anonymous range: {largest:#x} bytes)",
            fix="make more guest-physical memory anonymous (vm_memory_make_anon) or ask for less",
        )

    def _largest_free(self, region: AnonRegion) -> int:
        return max([region.end - region.bump, *(hi - lo for lo, hi in region.freed)])

    def _set_bump(self, region: AnonRegion, bump: int) -> None:
        before = region.bump
        region.bump = bump
        self.undo.record(partial(setattr, region, "bump", before))

    def _set_freed(self, region: AnonRegion, freed: list[tuple[int, int]]) -> None:
        before = region.freed
        region.freed = freed
        self.undo.record(partial(setattr, region, "freed", before))

    def _take_freed(self, region: AnonRegion, start: int, end: int) -> None:
        pieces: list[tuple[int, int]] = []
        for lo, hi in region.freed:
            if hi <= start or lo >= end:
                pieces.append((lo, hi))
                continue
            if lo < start:
                pieces.append((lo, start))
            if end < hi:
                pieces.append((end, hi))
        self._set_freed(region, pieces)

    def release(self, start: int, size: int) -> None:
        """Give back what :meth:`allocate` took for a reservation at ``start`` of ``size``."""
        region = self.region_at(start)
        if region is None:
            return
        end = min(region.end, start + round_up(size, self.page_size))
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted([*region.freed, (start, end)]):
            if merged and merged[-1][1] >= lo:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self._set_freed(region, merged)
