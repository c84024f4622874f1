"""A reference model of libsel4vm's guest memory, written from its C code.

Sources: seL4/seL4_projects_libs ``libsel4vm/src/guest_memory.c`` and ``guest_ram.c`` (commit
0e06beb), seL4/seL4_libs ``libsel4utils/src/vspace/vspace.c`` (commit d8abd95: reservations
are page-rounded, ``perform_reservation``), seL4/util_libs ``libutils`` ``ROUND_UP`` (by
modulo).  Each method says which C function it follows.  The model follows C literally —
lists walked in C's order, C's comparisons — except where sel4vmm documents a fix; those
places are marked ``DEPARTURE`` and each has its own test in ``tests/test_libsel4vm.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PAGE = 0x1000
#: libsel4vspace on a 64-bit kernel: 4 levels of 9 bits over 4 KiB pages.
VSPACE_LIMIT = 1 << 48
UINT32_MAX = 0xFFFF_FFFF


def round_up(n: int, b: int) -> int:
    """libutils ``ROUND_UP``: ``n + (n % b == 0 ? 0 : b - n % b)``."""
    return n + (0 if n % b == 0 else b - n % b)


def page_numbers(addr: int, size: int) -> set[int]:
    """The pages ``perform_reservation`` reserves: ROUND_DOWN(addr) .. ROUND_UP(addr+size)."""
    return set(range(addr // PAGE, round_up(addr + size, PAGE) // PAGE))


@dataclass
class CReservation:
    """``vm_memory_reservation_t``: exact address and size."""

    addr: int
    size: int
    anonymous: bool
    cookie: int
    mapped: bool = False


@dataclass
class CAnonRegion:
    """``anon_region_t``."""

    addr: int
    size: int
    alloc_addr: int
    reservations: list[CReservation] = field(default_factory=list)
    #: DEPARTURE (C cannot free anonymous reservations): (start, end) given back.
    freed: list[tuple[int, int]] = field(default_factory=list)


class CGuestMemory:
    """``guest_memory.c`` over a sel4utils-like page-granular vspace reservation layer."""

    def __init__(self) -> None:
        self.regular: list[CReservation] = []
        self.anon_regions: list[CAnonRegion] = []
        self.reserved_pages: set[int] = set()
        self.mapped_pages: set[int] = set()

    def _vspace_reserve(self, addr: int, size: int) -> bool:
        """``vspace_reserve_deferred_rights_range_at``.  DEPARTURE: every page of the range
        is checked (sel4utils skips the last page of an unaligned range) and a range past
        the vspace or wrapping past 2^64 is refused; zero sizes are refused, as C does."""
        if size == 0 or addr + size > VSPACE_LIMIT:
            return False
        pages = page_numbers(addr, size)
        if pages & self.reserved_pages:
            return False
        self.reserved_pages |= pages
        return True

    def reserve_at(self, addr: int, size: int, has_callback: bool, cookie: int) -> bool:
        """``vm_reserve_memory_at``: NULL for a NULL callback."""
        if not has_callback or not self._vspace_reserve(addr, size):
            return False
        self.regular.append(CReservation(addr, size, False, cookie))
        return True

    def make_anon(self, addr: int, size: int) -> bool:
        """``vm_memory_make_anon``: exact region, ``alloc_addr = addr``."""
        if not self._vspace_reserve(addr, size):
            return False
        self.anon_regions.append(CAnonRegion(addr, size, addr))
        self.anon_regions.sort(key=lambda r: r.addr)  # the anon tree is walked in order
        return True

    def reserve_anon(self, size: int, align: int, has_callback: bool, cookie: int) -> int | None:
        """``vm_reserve_anon_memory`` / ``find_allocable_anon_region``: the address, or None."""
        if not has_callback or size == 0:  # DEPARTURE: C makes a zero-size reservation
            return None
        rounded = round_up(size, PAGE)
        for region in self.anon_regions:
            allocable = round_up(region.alloc_addr, align)
            # C: size <= region->size - (allocable - region->addr), in size_t.  DEPARTURE:
            # compared without the unsigned underflow.
            if allocable + rounded <= region.addr + region.size:
                region.alloc_addr = allocable + rounded
                region.reservations.append(CReservation(allocable, size, True, cookie))
                return allocable
        # DEPARTURE: freed space, first fit per region, only after the bump failed.
        for region in self.anon_regions:
            for lo, hi in _coalesce(region.freed):
                aligned = round_up(lo, align)
                if aligned + rounded <= hi:
                    region.freed = _subtract(region.freed, aligned, aligned + rounded)
                    region.reservations.append(CReservation(aligned, size, True, cookie))
                    return aligned
        return None

    def free(self, cookie: int) -> bool:
        """``vm_free_reserved_memory``; DEPARTURE for anonymous ones (C refuses)."""
        for reservation in self.regular:
            if reservation.cookie == cookie:
                self.regular.remove(reservation)
                self._unmap(reservation)
                self.reserved_pages -= page_numbers(reservation.addr, reservation.size)
                return True
        for region in self.anon_regions:
            for reservation in region.reservations:
                if reservation.cookie == cookie:
                    region.reservations.remove(reservation)
                    self._unmap(reservation)
                    end = min(
                        region.addr + region.size,
                        reservation.addr + round_up(reservation.size, PAGE),
                    )
                    region.freed.append((reservation.addr, end))
                    return True
        return False

    def map(self, cookie: int) -> bool:
        """``vm_map_reservation`` (immediate): every page the reservation touches gets a
        frame.  DEPARTURE: C maps from ``addr`` in steps of a page, so an unaligned start
        maps only the first page; and C fails part-way on a page already mapped, leaving
        what it mapped (here nothing is mapped then)."""
        found = [r for r in self._all() if r.cookie == cookie]
        if not found or found[0].mapped:
            return False
        reservation = found[0]
        pages = page_numbers(reservation.addr, reservation.size)
        if pages & self.mapped_pages:
            return False
        reservation.mapped = True
        self.mapped_pages |= pages
        return True

    def _all(self) -> list[CReservation]:
        return self.regular + [r for region in self.anon_regions for r in region.reservations]

    def _unmap(self, reservation: CReservation) -> None:
        if reservation.mapped:  # vspace_unmap_pages over ROUND_UP(size) pages
            self.mapped_pages -= page_numbers(reservation.addr, reservation.size)

    def fault(self, addr: int, length: int) -> tuple[str, int]:
        """``vm_memory_handle_fault``: ('unhandled' | 'error' | 'callback', cookie)."""
        node: CReservation | CAnonRegion | None = None
        for reservation in self.regular:  # the regular tree is searched first
            if reservation.addr <= addr < reservation.addr + reservation.size:
                node = reservation
        if node is None:
            for region in self.anon_regions:
                if region.addr <= addr < region.addr + region.size:
                    node = region
        if node is None:
            return "unhandled", 0
        if node.addr + length > node.addr + node.size:
            return "error", 0
        if isinstance(node, CReservation):
            return "callback", node.cookie
        for reservation in node.reservations:  # find_anon_reservation_by_addr
            if reservation.addr <= addr and reservation.addr + reservation.size >= addr + length:
                return "callback", reservation.cookie
        return "unhandled", 0

    def live(self) -> set[tuple[int, int]]:
        """(addr, size) of every reservation."""
        result = {(r.addr, r.size) for r in self.regular}
        for region in self.anon_regions:
            result |= {(r.addr, r.size) for r in region.reservations}
        return result


def _coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and merged[-1][1] >= lo:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _subtract(ranges: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    pieces: list[tuple[int, int]] = []
    for lo, hi in _coalesce(ranges):
        if hi <= start or lo >= end:
            pieces.append((lo, hi))
            continue
        if lo < start:
            pieces.append((lo, start))
        if end < hi:
            pieces.append((end, hi))
    return pieces


@dataclass
class CRamRegion:
    """``vm_ram_region_t``."""

    start: int
    size: int
    allocated: bool


class CGuestRam:
    """``guest_ram.c``'s region list: push, qsort by start, collapse."""

    def __init__(self) -> None:
        self.regions: list[CRamRegion] = []

    def _push(self, start: int, size: int, allocated: bool) -> None:
        if size == 0:  # push_guest_ram_region refuses empty regions
            return
        self.regions.append(CRamRegion(start, size, allocated))

    def _sort_and_collapse(self) -> None:
        self.regions.sort(key=lambda r: r.start)
        i = 1
        while i < len(self.regions):
            a, b = self.regions[i - 1], self.regions[i]
            if a.allocated == b.allocated and a.start + a.size == b.start:
                a.size += b.size
                del self.regions[i]
            else:
                i += 1

    def register(self, start: int, size: int) -> None:
        """``expand_guest_ram_region`` after a successful reservation and map."""
        self._push(start, size, False)
        self._sort_and_collapse()

    def is_ram_region(self, addr: int, size: int) -> bool:
        """C's ``is_ram_region``: one region holds the whole range."""
        return any(r.start <= addr and r.start + r.size >= addr + size for r in self.regions)

    def mark_allocated(self, start: int, size: int) -> None:
        """``vm_ram_mark_allocated``: the first region holding the range, split in three."""
        holding = [r for r in self.regions if r.start <= start and r.start + r.size >= start + size]
        if not holding or holding[0].allocated:
            return
        region = holding[0]
        self.regions.remove(region)
        self._push(region.start, start - region.start, False)
        self._push(start, size, True)
        self._push(start + size, region.size - size - (start - region.start), False)
        self._sort_and_collapse()

    def set_pages(self, start: int, size: int, allocated: bool) -> None:
        """DEPARTURE (``vm_ram_free`` frees; marking may cross regions): set the flag of
        every byte of ``[start, start + size)``."""
        pieces: list[CRamRegion] = []
        end = start + size
        for region in self.regions:
            r_end = region.start + region.size
            if r_end <= start or region.start >= end:
                pieces.append(region)
                continue
            if region.start < start:
                pieces.append(CRamRegion(region.start, start - region.start, region.allocated))
            lo, hi = max(region.start, start), min(r_end, end)
            pieces.append(CRamRegion(lo, hi - lo, allocated))
            if r_end > end:
                pieces.append(CRamRegion(end, r_end - end, region.allocated))
        self.regions = pieces
        self._sort_and_collapse()

    def allocate(self, size: int) -> int:
        """``vm_ram_allocate``: first free region with ``size >= bytes``; 0 on failure."""
        for region in self.regions:
            if not region.allocated and region.size >= size:
                addr = region.start
                self.mark_allocated(addr, size)
                return addr
        return 0

    def largest_free(self, vtx_64bit_guests: bool = False) -> tuple[int, int, int]:
        """``vm_ram_find_largest_free_region``: (status, addr, size)."""
        largest, largest_size = -1, 0
        for i, region in enumerate(self.regions):
            if (
                not region.allocated
                and region.size > largest_size
                and (not vtx_64bit_guests or region.start + region.size < UINT32_MAX)
            ):
                largest, largest_size = i, region.size
        if largest == -1:
            return -1, 0, 0
        return 0, self.regions[largest].start, self.regions[largest].size
