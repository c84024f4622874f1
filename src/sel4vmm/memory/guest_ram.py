"""Guest RAM (libsel4vm ``guest_ram.h``): registered regions, an allocator, touch, read, write.

Registering RAM reserves the guest range, gets frames for it — from the VM's untyped pool,
or 1:1 at the same physical address from (device) untyped when DMA needs IPA == PA — and
maps them.  The allocator on top tracks which parts of registered RAM are in use, so image
loaders mark what they write and later users allocate around it.

As in C (``guest_ram.c``): a region keeps the exact size registered (frames cover its pages),
``allocate`` hands out the start of the first free region big enough, with no rounding, and
the largest free region is the first of the largest.  Departures (all fixes, listed in
:mod:`sel4vmm.libsel4vm`): ``free`` really frees (a no-op in C); RAM may be backed by 2 MiB
or 1 GiB frames, not only 4 KiB; a registration that fails rolls back entirely; a range may
span several registered regions; touch callbacks get the exact guest address and offset.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sel4vmm.errors import AddressSpaceError, Sel4VmmError
from sel4vmm.memory.address_space import GuestAddressSpace
from sel4vmm.memory.faults import FaultResult, MemoryFault
from sel4vmm.memory.reservation import Reservation
from sel4vmm.sel4.allocator import ObjectAllocator, Request
from sel4vmm.sel4.objects import ObjectKind, ObjectRun, human_size
from sel4vmm.sel4.physmem import PhysicalMemory

if TYPE_CHECKING:
    from sel4vmm.sel4.cspace import CSpace
    from sel4vmm.sel4.undo import UndoLog

#: ``callback(vm, guest_addr, host_view, length, offset, cookie) -> int`` (0 = carry on) —
#: libsel4vm's ``ram_touch_callback_fn``, with the VMM mapping as a writable memoryview.
TouchCallback = Callable[[Any, int, memoryview, int, int, Any], int]

#: C's ``UINT32_MAX``, which ``vm_ram_find_largest_free_region`` compares region ends with.
UINT32_MAX = 0xFFFF_FFFF


class TouchStopped(Sel4VmmError):
    """A touch callback returned non-zero; ``code`` is what it returned (C's result)."""

    def __init__(self, code: int, addr: int) -> None:
        super().__init__(f"touch callback failed with {code} at guest address {addr:#x}")
        self.code = code


@dataclass
class RamRegion:
    """A piece of registered RAM and whether the allocator has handed it out."""

    start: int
    size: int
    allocated: bool

    @property
    def end(self) -> int:
        return self.start + self.size


def ram_fault_callback(vm: Any, fault: MemoryFault, cookie: Any) -> FaultResult:
    """libsel4vm's ``default_error_fault_callback``: RAM never faults unless it is broken."""
    return FaultResult.ERROR


class GuestRam:
    """The registered RAM of one VM."""

    def __init__(
        self,
        memory: GuestAddressSpace,
        allocator: ObjectAllocator,
        physmem: PhysicalMemory,
        cspace: CSpace,
        undo: UndoLog,
        vm: object | None = None,
    ) -> None:
        self.memory = memory
        self.allocator = allocator
        self.physmem = physmem
        self.cspace = cspace
        self.undo = undo
        self.vm = vm
        self.page_size = memory.page_size
        self._regions: list[RamRegion] = []

    # -- registration ----------------------------------------------------------------------
    def register(self, size: int, *, page_bits: int | None = None) -> int:
        """``vm_ram_register``: RAM anywhere in anonymous guest memory; returns its address."""
        bits = self._frame_bits(page_bits)
        if size <= 0:
            raise AddressSpaceError(f"cannot register {size} bytes of RAM", fix="ask for more")
        if bits != self.memory.arch.page_bits[0]:
            # Large frames: whole frames, so the next anonymous reservation starts past them.
            size = (size + (1 << bits) - 1) >> bits << bits
        with self.undo.transaction():
            reservation = self.memory.reserve_anon(size, 1 << bits, ram_fault_callback, label="ram")
            self._back(reservation, bits, paddr=None)
        return reservation.start

    def register_at(
        self,
        addr: int,
        size: int,
        *,
        one_to_one: bool = False,
        page_bits: int | None = None,
        paddr: int | None = None,
    ) -> None:
        """``vm_ram_register_at``: RAM at ``addr``; ``one_to_one`` backs it at IPA == PA.

        ``paddr`` backs it at another fixed physical address (Microkit ``phys_addr``).  With
        4 KiB frames any start and size are accepted, as in C: the region is exact and the
        pages it touches are backed; larger frames need whole, aligned frames.
        """
        bits = self._frame_bits(page_bits)
        frame = 1 << bits
        if size <= 0:
            raise AddressSpaceError(
                f"cannot register {size} bytes of RAM at {addr:#x}", fix="ask for more"
            )
        if bits != self.memory.arch.page_bits[0] and (addr % frame or size % frame):
            raise AddressSpaceError(
                f"RAM [{addr:#x}, {addr + size:#x}) is not a whole number of "
                f"{human_size(frame)} frames",
                fix=f"align start and size to {frame:#x}, or use smaller frames",
            )
        if one_to_one:
            paddr = addr
        if paddr is not None and (paddr - addr) % frame:
            raise AddressSpaceError(
                f"RAM at {addr:#x} cannot be backed at {paddr:#x}: the two differ by less "
                "than a frame",
                fix=f"give addresses with the same offset in a {human_size(frame)} frame",
            )
        with self.undo.transaction():
            reservation = self.memory.reserve_at(addr, size, ram_fault_callback, label="ram")
            self._back(reservation, bits, paddr=paddr)

    def _frame_bits(self, page_bits: int | None) -> int:
        arch = self.memory.arch
        bits = arch.page_bits[0] if page_bits is None else page_bits
        if bits not in arch.page_bits:
            raise AddressSpaceError(
                f"{arch.name} has no {bits}-bit frames",
                fix=f"use page_bits of {', '.join(str(b) for b in arch.page_bits)}",
            )
        return bits

    def _back(self, reservation: Reservation, bits: int, *, paddr: int | None) -> None:
        """Frames for a fresh RAM reservation: at ``paddr`` onwards, or from the pool (with
        the tables they need, as one batch), mapped and added to the region list."""
        addr, size = reservation.start, reservation.size
        first = addr >> bits << bits
        count = (addr + size - first + (1 << bits) - 1) >> bits
        runs: list[ObjectRun]
        if paddr is not None:
            runs = self.allocator.retype_at(ObjectKind.FRAME, paddr - (addr - first), bits, count)
        else:
            frames = Request(
                ObjectKind.FRAME, bits, count, may_use_device=self.allocator.frames_may_use_device
            )
            runs = self.memory.tables.allocate_with([(first, count << bits, bits)], [frames])[0]
        self.memory.map_runs(reservation, first, runs)
        self._add_region(RamRegion(addr, size, False))

    # -- the region list -------------------------------------------------------------------
    def regions(self) -> list[RamRegion]:
        """Copies of the region list (callers and edits must not alias the live one)."""
        return [RamRegion(r.start, r.size, r.allocated) for r in self._regions]

    def _set_regions(self, regions: list[RamRegion]) -> None:
        before = self._regions
        merged: list[RamRegion] = []
        for region in sorted(regions, key=lambda r: r.start):
            if region.size <= 0:
                continue
            last = merged[-1] if merged else None
            if last is not None and last.end == region.start and last.allocated == region.allocated:
                last.size += region.size
            else:
                merged.append(region)
        self._regions = merged
        self.undo.record(lambda: setattr(self, "_regions", before))

    def _add_region(self, region: RamRegion) -> None:
        self._set_regions([*self.regions(), region])

    def _covering(self, start: int, size: int) -> bool:
        """Whether registered RAM covers ``[start, start + size)`` (across regions)."""
        cursor, end = start, start + size
        starts = [r.start for r in self._regions]
        while cursor < end:
            index = bisect.bisect_right(starts, cursor) - 1
            if index < 0 or cursor >= self._regions[index].end:
                return False
            cursor = self._regions[index].end
        return True

    def is_ram(self, start: int, size: int) -> bool:
        return size > 0 and self._covering(start, size)

    def _set_allocated(self, start: int, size: int, allocated: bool, what: str) -> None:
        if size <= 0:
            raise AddressSpaceError(f"cannot {what} {size} bytes", fix="give a positive size")
        if not self._covering(start, size):
            raise AddressSpaceError(
                f"cannot {what} [{start:#x}, {start + size:#x}): not all of it is registered RAM",
                fix="stay inside the RAM regions " + self._describe(),
            )
        end = start + size
        pieces: list[RamRegion] = []
        for region in self.regions():
            if region.end <= start or region.start >= end:
                pieces.append(region)
                continue
            if region.start < start:
                pieces.append(RamRegion(region.start, start - region.start, region.allocated))
            lo, hi = max(region.start, start), min(region.end, end)
            pieces.append(RamRegion(lo, hi - lo, allocated))
            if region.end > end:
                pieces.append(RamRegion(end, region.end - end, region.allocated))
        self._set_regions(pieces)

    def _describe(self) -> str:
        return ", ".join(f"[{r.start:#x}, {r.end:#x})" for r in self._regions) or "(none)"

    def mark_allocated(self, start: int, size: int) -> None:
        """``vm_ram_mark_allocated``: say that ``[start, start + size)`` is in use."""
        self._set_allocated(start, size, True, "mark allocated")

    def allocate(self, size: int, align: int | None = None) -> int:
        """``vm_ram_allocate``: first fit of ``size`` bytes of free RAM; returns the address.

        Without ``align`` this is C's answer: the start of the first free region of at least
        ``size`` bytes, unrounded; ``size`` 0 returns that start and takes nothing.
        """
        if size < 0:
            raise AddressSpaceError(f"cannot allocate {size} bytes of RAM", fix="ask for more")
        for region in self._regions:
            if region.allocated:
                continue
            start = region.start if not align else -(-region.start // align) * align
            if start + size <= region.end:
                if size:
                    self.mark_allocated(start, size)
                return start
        largest = self.largest_free()[1]
        raise AddressSpaceError(
            f"no free guest RAM for {size:#x} bytes (largest free region: {largest:#x} bytes)",
            fix="register more RAM or free some",
        )

    def free(self, start: int, size: int) -> None:
        """``vm_ram_free``: give ``[start, start + size)`` back (libsel4vm forgets to)."""
        self._set_allocated(start, size, False, "free")

    def largest_free(self, *, below_4gib: bool = False) -> tuple[int, int]:
        """``vm_ram_find_largest_free_region``: (address, size) of the first largest free
        region.

        ``below_4gib`` is C's ``CONFIG_X86_64_VTX_64BIT_GUESTS`` rule, with C's comparison
        ``start + size < UINT32_MAX``: it also skips a region ending exactly at 4 GiB (or at
        0xffffffff).  Followed as written, off-by-one included, so a VMM ported from C
        picks the same region; C's intent would be ``start + size <= 2**32``.
        """
        best: RamRegion | None = None
        for region in self._regions:
            if region.allocated or (below_4gib and region.end >= UINT32_MAX):
                continue
            if best is None or region.size > best.size:
                best = region
        if best is None:
            where = " below 4 GiB" if below_4gib else ""
            raise AddressSpaceError(f"no free guest RAM{where}", fix="register RAM or free some")
        return best.start, best.size

    # -- access ----------------------------------------------------------------------------
    def _pieces(self, addr: int, size: int) -> list[tuple[int, int, int]]:
        """(guest_addr, paddr, length) pieces, one per physically contiguous extent."""
        if size < 0:
            raise AddressSpaceError(f"negative length {size}")
        if size == 0:
            return []
        if not self._covering(addr, size):
            raise AddressSpaceError(
                f"[{addr:#x}, {addr + size:#x}) is not registered guest RAM",
                fix="access only RAM inside " + self._describe(),
            )
        pieces = []
        cursor = addr
        for paddr, length in self.memory.translate(addr, size):
            pieces.append((cursor, paddr, length))
            cursor += length
        return pieces

    def touch(self, addr: int, size: int, callback: TouchCallback, cookie: Any = None) -> None:
        """``vm_ram_touch``: call ``callback`` once per frame of ``[addr, addr + size)``.

        Like libsel4vm, each step holds a copy of the frame's cap (one CSpace slot) while
        the callback runs.  A non-zero return stops the walk with an error.  A zero-length
        touch succeeds only at an address inside (or at the end of) a RAM region, as C's
        ``is_ram_region`` decides; each call gets the exact guest address of its chunk (C
        passes the page-aligned address with an adjusted host pointer).
        """
        if size == 0 and not any(r.start <= addr <= r.end for r in self._regions):
            raise AddressSpaceError(
                f"cannot touch 0 bytes at {addr:#x}: it is not in registered RAM",
                fix="access only RAM inside " + self._describe(),
            )
        for guest, paddr, length in self._pieces(addr, size):
            extent_bits = self._frame_bits_at(guest)
            cursor = guest
            end = guest + length
            while cursor < end:
                frame_end = (cursor >> extent_bits) + 1 << extent_bits
                chunk = min(end, frame_end) - cursor
                self.cspace.note_transient(1, "frame cap copy")
                view = self.physmem.view(paddr + (cursor - guest), chunk)
                try:
                    rc = callback(self.vm, cursor, view, chunk, cursor - addr, cookie)
                finally:
                    view.release()
                if rc:
                    raise TouchStopped(rc, cursor)
                cursor += chunk

    def _frame_bits_at(self, addr: int) -> int:
        reservation = self.memory.find(addr)
        extent = reservation.extent_at(addr) if reservation is not None else None
        return extent.page_bits if extent is not None else self.memory.arch.page_bits[0]

    def read(self, addr: int, size: int) -> bytes:
        """Copy ``size`` bytes of guest RAM out (``vm_guest_ram_read_callback`` over touch)."""
        out = bytearray(size)
        self.read_into(addr, out)
        return bytes(out)

    def read_into(self, addr: int, buffer: bytearray | memoryview) -> None:
        """Fill ``buffer`` from guest RAM at ``addr`` without an intermediate copy."""
        target = memoryview(buffer).cast("B")
        self.cspace.note_transient(1, "frame cap copy")
        offset = 0
        for _guest, paddr, length in self._pieces(addr, len(target)):
            target[offset : offset + length] = self.physmem.view(paddr, length)
            offset += length

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` into guest RAM at ``addr`` (``vm_guest_ram_write_callback``)."""
        source = memoryview(data).cast("B")
        self.cspace.note_transient(1, "frame cap copy")
        offset = 0
        for _guest, paddr, length in self._pieces(addr, len(source)):
            self.physmem.view(paddr, length)[:] = source[offset : offset + length]
            offset += length

    def view(self, addr: int, size: int) -> memoryview:
        """A zero-copy view of guest RAM, which must be physically contiguous."""
        pieces = self._pieces(addr, size)
        if len(pieces) != 1:
            raise AddressSpaceError(
                f"[{addr:#x}, {addr + size:#x}) spans {len(pieces)} physically separate pieces",
                fix="use read/write, or touch, for ranges that cross frames from different untyped",
            )
        return self.physmem.view(pieces[0][1], size)

    def physical_pieces(self, addr: int, size: int) -> list[tuple[int, int, int]]:
        """(guest, paddr, length) triples behind a RAM range — for DMA models and reports."""
        return self._pieces(addr, size)
