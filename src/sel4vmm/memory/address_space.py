"""The guest-physical address space of one VM (libsel4vm ``guest_memory.h``).

Reservations claim guest-physical ranges.  A reservation is either *mapped* — frames are
behind it and the guest touches memory directly — or *emulated*: every access faults into
the VMM, which asks the reservation's callback.  Deferred reservations are mapped on their
first fault, which then answers RESTART.

Reservations keep the caller's exact size (C's ``vm_memory_reservation_t``); the space they
claim is page-granular (C's libsel4vspace reservation is page-rounded), and mapping one maps
every page it touches.  Fault dispatch follows ``vm_memory_handle_fault``: a fault longer
than a regular reservation is an ERROR, a fault that runs past the end of an anonymous
sub-reservation is UNHANDLED.  The departures from libsel4vm are listed, with the C code
they fix, in :mod:`sel4vmm.libsel4vm`.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any, Protocol

from sel4vmm.errors import AddressSpaceError, Sel4VmmError
from sel4vmm.memory.anonymous import AnonymousMemory
from sel4vmm.memory.dispatch import FaultDispatch
from sel4vmm.memory.faults import FaultCallback
from sel4vmm.memory.frames import check_frame, frame_cap, frame_iterator, frame_rights
from sel4vmm.memory.reservation import MapIterator, MappedExtent, Reservation, VmFrame
from sel4vmm.memory.stage2 import Stage2Tables
from sel4vmm.sel4.allocator import Request
from sel4vmm.sel4.cspace import CSpace
from sel4vmm.sel4.objects import ObjectRun
from sel4vmm.sel4.undo import UndoLog

if TYPE_CHECKING:
    from sel4vmm.sel4.arch import Arch


#: libsel4vm's reservations live in a libsel4vspace ``vspace_t``: four levels of 9 bits over
#: 4 KiB pages on a 64-bit kernel, so it accepts addresses below 2^48 whatever the IPA size.
VSPACE_ADDRESS_BITS = 48


class AddressSpaceListener(Protocol):
    """What a backend implements to keep its view (unicorn maps, KVM slots) in step."""

    def extent_mapped(self, extent: MappedExtent) -> None: ...

    def extent_unmapped(self, extent: MappedExtent) -> None: ...


class GuestAddressSpace(FaultDispatch):
    """Reservations, mappings and fault dispatch for one VM."""

    def __init__(
        self,
        arch: Arch,
        cspace: CSpace,
        tables: Stage2Tables,
        undo: UndoLog,
        vm: object | None = None,
    ) -> None:
        self.arch = arch
        self.cspace = cspace
        self.tables = tables
        self.undo = undo
        self.vm = vm
        self.page_size = arch.page_size
        #: Reservations may be anywhere libsel4vm's vspace reaches ...
        self.limit = 1 << VSPACE_ADDRESS_BITS
        #: ... but frames only where the stage-2 translation (the IPA size) reaches.
        self.map_limit = 1 << arch.guest_address_bits
        self._starts: list[int] = []
        self._reservations: list[Reservation] = []
        self.anon = AnonymousMemory(undo, self.page_size)
        self._listeners: list[AddressSpaceListener] = []
        self._unhandled: tuple[FaultCallback, Any] | None = None
        self._tlb: dict[int, list[Reservation | None]] = {}
        #: Why the last fault ended in ERROR, for the backend's diagnostic.
        self.last_error: str = ""

    # -- listeners -----------------------------------------------------------------------
    def add_listener(self, listener: AddressSpaceListener) -> None:
        """Tell ``listener`` about every extent mapped from now on (and the present ones)."""
        self._listeners.append(listener)
        for extent in self.extents():
            listener.extent_mapped(extent)

    def remove_listener(self, listener: AddressSpaceListener) -> None:
        self._listeners.remove(listener)

    def set_unhandled_fault_handler(
        self, callback: FaultCallback | None, cookie: Any = None
    ) -> None:
        """``vm_register_unhandled_mem_fault_callback``."""
        self._unhandled = None if callback is None else (callback, cookie)

    # -- lookup (find, the page cache: sel4vmm.memory.dispatch) -------------------------
    def reservations(self) -> list[Reservation]:
        return list(self._reservations)

    def anonymous_regions(self) -> list[tuple[int, int]]:
        return self.anon.regions()

    def extents(self) -> list[MappedExtent]:
        return [e for r in self._reservations for e in r.extents]

    def __len__(self) -> int:
        return len(self._reservations)

    # -- reserving -----------------------------------------------------------------------
    def page_span(self, addr: int, size: int) -> tuple[int, int]:
        """The whole pages ``[addr, addr + size)`` touches (what libsel4vspace reserves)."""
        page = self.page_size
        return addr // page * page, (addr + size + page - 1) // page * page

    def _check_range(self, addr: int, size: int, what: str) -> None:
        if size <= 0:
            raise AddressSpaceError(
                f"cannot reserve {size} bytes at {addr:#x}: {what} must not be empty",
                fix="give the reservation a size greater than zero",
            )
        if addr < 0 or addr + size > self.limit:
            raise AddressSpaceError(
                f"{what} [{addr:#x}, {addr + size:#x}) is outside the "
                f"{VSPACE_ADDRESS_BITS}-bit range of libsel4vm's guest vspace",
                fix=f"keep it below {self.limit:#x}",
            )

    def _conflict(self, addr: int, size: int) -> str | None:
        """What already claims a page of ``[addr, addr + size)``, if anything."""
        lo, hi = self.page_span(addr, size)
        index = bisect.bisect_left(self._starts, hi)
        if index > 0:
            prev = self._reservations[index - 1]
            if self.page_span(prev.start, prev.size)[1] > lo:
                return str(prev)
        region = self.anon.overlapping(lo, hi)
        if region is not None:
            return f"anonymous region [{region.start:#x}, {region.end:#x})"
        return None

    def _insert(self, reservation: Reservation) -> None:
        """Add a reservation; a failing operation around this takes it out again."""
        self._link(reservation)
        self.undo.record(lambda: self._remove(reservation))

    def _link(self, reservation: Reservation) -> None:
        self._tlb.clear()
        index = bisect.bisect_left(self._starts, reservation.start)
        self._starts.insert(index, reservation.start)
        self._reservations.insert(index, reservation)

    def _remove(self, reservation: Reservation) -> None:
        self._tlb.clear()
        index = bisect.bisect_left(self._starts, reservation.start)
        while self._reservations[index] is not reservation:
            index += 1
        del self._starts[index]
        del self._reservations[index]

    def reserve_at(
        self,
        addr: int,
        size: int,
        callback: FaultCallback | None = None,
        cookie: Any = None,
        *,
        label: str = "",
    ) -> Reservation:
        """``vm_reserve_memory_at``: claim ``[addr, addr + size)`` (any alignment)."""
        self._check_range(addr, size, f"reservation {label or ''}".strip())
        conflict = self._conflict(addr, size)
        if conflict is not None:
            raise AddressSpaceError(
                f"cannot reserve [{addr:#x}, {addr + size:#x}){' for ' + label if label else ''}: "
                f"it overlaps {conflict} (reservations are page-granular)",
                fix="choose a range that shares no page with existing reservations",
            )
        reservation = Reservation(addr, size, callback, cookie, label=label)
        self._insert(reservation)
        return reservation

    def make_anon(self, addr: int, size: int) -> None:
        """``vm_memory_make_anon``: a range that :meth:`reserve_anon` may allocate from.

        As in C the region keeps the exact bounds given; the pages it touches are claimed.
        """
        self._check_range(addr, size, "anonymous region")
        conflict = self._conflict(addr, size)
        if conflict is not None:
            raise AddressSpaceError(
                f"cannot make [{addr:#x}, {addr + size:#x}) anonymous: it overlaps {conflict}",
                fix="choose a free range",
            )
        self.anon.add(addr, size)

    def reserve_anon(
        self,
        size: int,
        align: int = 0,
        callback: FaultCallback | None = None,
        cookie: Any = None,
        *,
        label: str = "",
    ) -> Reservation:
        """``vm_reserve_anon_memory``: ``size`` bytes from anonymous memory, ``align``ed.

        C's addresses (:mod:`sel4vmm.memory.anonymous`); ``align`` 0 means a page (C would
        divide by zero), and any positive alignment is rounded to by modulo, as C's
        ``ROUND_UP`` does.
        """
        if align < 0:
            raise AddressSpaceError(
                f"alignment {align:#x} is negative", fix="use a positive alignment"
            )
        align = align or self.page_size
        if size <= 0:
            raise AddressSpaceError(
                "cannot reserve an empty anonymous region", fix="ask for more than 0 bytes"
            )
        with self.undo.transaction():
            start = self.anon.allocate(size, align)
            reservation = Reservation(start, size, callback, cookie, anonymous=True, label=label)
            self._insert(reservation)
        return reservation

    def free(self, reservation: Reservation) -> None:
        """``vm_free_reserved_memory``: unmap and forget a reservation (anonymous too)."""
        if self._find_slow(reservation.start) is not reservation:
            raise AddressSpaceError(
                f"{reservation} is not a live reservation of this VM",
                fix="free each reservation once",
            )
        with self.undo.transaction():
            self._unmap(reservation)
            self._remove(reservation)
            self.undo.record(lambda: self._link(reservation))
            if reservation.anonymous:
                self.anon.release(reservation.start, reservation.size)

    # -- mapping -------------------------------------------------------------------------
    def map(
        self,
        reservation: Reservation,
        iterator: MapIterator,
        cookie: Any = None,
        *,
        defer: bool = False,
    ) -> None:
        """``vm_map_reservation``: back the reservation with the frames ``iterator`` yields.

        Every page the reservation touches is mapped, the first asked for at its page
        address.  With ``defer`` the iterator runs on the first fault in the reservation
        instead; a second call while a deferred map is pending replaces its iterator, as
        in C.  A failure part-way unmaps everything this call mapped and leaves no
        iterator behind (libsel4vm leaves it half mapped, with the iterator armed).
        """
        if self._find_slow(reservation.start) is not reservation:
            raise AddressSpaceError(f"{reservation} is not a live reservation of this VM")
        if reservation.mapped:
            raise AddressSpaceError(
                f"{reservation} is already mapped", fix="free it and reserve again to remap"
            )
        pending = reservation.deferred
        with self.undo.transaction():
            self._tlb.clear()  # entries know whether a map is pending
            reservation.deferred = (iterator, cookie) if defer else None
            self.undo.record(lambda: setattr(reservation, "deferred", pending))
            self.undo.record(self._tlb.clear)
            if not defer:
                self._map_now(reservation, iterator, cookie)

    def _map_now(self, reservation: Reservation, iterator: MapIterator, cookie: Any) -> None:
        frames: list[tuple[ObjectRun, int, VmFrame]] = []
        used: set[tuple[int, int]] = set()
        span = self.page_span(reservation.start, reservation.size)
        self._check_mappable(reservation, *span)
        current = span[0]
        while current < span[1]:
            where = f"mapping {reservation} at {current:#x}"
            try:
                frame = iterator(current, cookie)
            except Sel4VmmError as error:
                raise AddressSpaceError(f"{where} failed: {error.message}", fix=error.fix) from None
            run, index = check_frame(self.cspace, where, span, current, frame)
            if (id(run), index) in used:
                raise AddressSpaceError(
                    f"{where}: frame cap {frame.cptr} is already mapped earlier in this "
                    "reservation",
                    fix="map a copy of the cap (seL4 maps each frame cap once)",
                )
            used.add((id(run), index))
            frames.append((run, index, frame))
            current = frame.vaddr + (1 << frame.size_bits)
        extents = [
            (
                MappedExtent(
                    frame.vaddr,
                    1 << frame.size_bits,
                    run.paddr_of(index),
                    frame.size_bits,
                    *frame_rights(frame.rights),
                    device=run.device,
                ),
                run,
                index,
                1,
            )
            for run, index, frame in frames
        ]
        self._commit(reservation, extents)

    def _check_mappable(self, reservation: Reservation, lo: int, hi: int) -> None:
        """Frames at ``[lo, hi)`` must be inside the stage-2's reach and on no page another
        reservation has mapped (reservations can share an edge page only when they are
        sub-page or inside an unaligned anonymous region)."""
        if hi > self.map_limit:
            raise AddressSpaceError(
                f"cannot map {reservation}: the stage-2 translation of this VM covers a "
                f"{self.arch.guest_address_bits}-bit IPA (below {self.map_limit:#x})",
                fix="map frames only below the IPA limit; emulate devices above it",
            )
        index = bisect.bisect_left(self._starts, reservation.start)
        for neighbour in self._reservations[max(0, index - 1) : index + 2]:
            if neighbour is reservation:
                continue
            for extent in neighbour.extents:
                if extent.guest_addr < hi and lo < extent.guest_end:
                    raise AddressSpaceError(
                        f"cannot map {reservation}: its page at "
                        f"{max(lo, extent.guest_addr):#x} is already mapped by {neighbour}",
                        fix="keep reservations that are mapped on separate pages",
                    )

    def _set_mapped(self, caps: list[tuple[int, int]], mapped: bool) -> None:
        for cptr, count in caps:
            found = frame_cap(self.cspace, cptr)
            if found is not None:
                run, index = found
                if run.mapped is None:
                    run.mapped = bytearray(run.count)
                run.mapped[index : index + count] = (b"\x01" if mapped else b"\x00") * count

    def map_runs(
        self, reservation: Reservation, guest_addr: int, runs: list[ObjectRun], rights: str = "rwx"
    ) -> None:
        """Map whole frame runs consecutively from ``guest_addr`` (RAM's fast path)."""
        writable, executable = frame_rights(rights)
        extents = []
        cursor = guest_addr
        for run in runs:
            extents.append(
                (
                    MappedExtent(
                        cursor, run.size, run.paddr, run.size_bits, writable, executable, run.device
                    ),
                    run,
                    0,
                    run.count,
                )
            )
            cursor += run.size
        lo, hi = self.page_span(reservation.start, reservation.size)
        if guest_addr < lo or cursor > hi:
            raise AddressSpaceError(
                f"frames for [{guest_addr:#x}, {cursor:#x}) overflow {reservation}"
            )
        self._check_mappable(reservation, guest_addr, cursor)
        self._commit(reservation, extents)

    def _commit(
        self,
        reservation: Reservation,
        pieces: list[tuple[MappedExtent, ObjectRun, int, int]],
    ) -> None:
        """Record extents (tables allocated first), coalesce, mark caps mapped, notify."""
        with self.undo.transaction():
            self.tables.allocate_with(
                ((e.guest_addr, e.size, e.page_bits) for e, _, _, _ in pieces), []
            )
            for _extent, run, index, count in pieces:
                if run.mapped is None:
                    run.mapped = bytearray(run.count)
                run.mapped[index : index + count] = b"\x01" * count
            merged: list[MappedExtent] = []
            for extent, _, _, _ in sorted(pieces, key=lambda p: p[0].guest_addr):
                last = merged[-1] if merged else None
                if (
                    last is not None
                    and last.guest_end == extent.guest_addr
                    and last.translate(extent.guest_addr) == extent.paddr
                    and (last.writable, last.executable, last.device, last.page_bits)
                    == (extent.writable, extent.executable, extent.device, extent.page_bits)
                ):
                    last.size += extent.size
                else:
                    merged.append(extent)
            reservation.extents = merged
            reservation.mapped_caps = [(run.first_cptr + i, n) for _, run, i, n in pieces]
            self.undo.record(lambda: self._forget_mapping(reservation))
            self._notify(merged, mapped=True)

    def _forget_mapping(self, reservation: Reservation) -> None:
        self._set_mapped(reservation.mapped_caps, False)
        reservation.extents = []
        reservation.mapped_caps = []

    def _unmap(self, reservation: Reservation) -> None:
        extents = reservation.extents
        caps = reservation.mapped_caps
        deferred = reservation.deferred
        self._forget_mapping(reservation)
        reservation.deferred = None

        def undo() -> None:
            reservation.extents = extents
            reservation.mapped_caps = caps
            reservation.deferred = deferred
            self._set_mapped(caps, True)

        self.undo.record(undo)
        self._notify(extents, mapped=False)

    def _notify(self, extents: list[MappedExtent], *, mapped: bool) -> None:
        """Tell the backends; if the surrounding operation is rolled back, tell them again."""
        for extent in extents:
            for listener in self._listeners:
                if mapped:
                    listener.extent_mapped(extent)
                else:
                    listener.extent_unmapped(extent)
        self.undo.record(lambda: self._notify_reverse(extents, mapped=mapped))

    def _notify_reverse(self, extents: list[MappedExtent], *, mapped: bool) -> None:
        for extent in reversed(extents):
            for listener in self._listeners:
                if mapped:
                    listener.extent_unmapped(extent)
                else:
                    listener.extent_mapped(extent)

    # -- translation ---------------------------------------------------------------------
    def translate(self, addr: int, size: int) -> list[tuple[int, int]]:
        """Physical (paddr, length) pieces behind ``[addr, addr + size)``; all must be mapped."""
        pieces: list[tuple[int, int]] = []
        end = addr + size
        cursor = addr
        while cursor < end:
            reservation = self.find(cursor)
            extent = reservation.extent_at(cursor) if reservation is not None else None
            if extent is None:
                raise AddressSpaceError(
                    f"guest-physical address {cursor:#x} is not backed by memory",
                    fix="access only registered, mapped guest RAM",
                )
            length = min(end, extent.guest_end) - cursor
            paddr = extent.translate(cursor)
            if pieces and pieces[-1][0] + pieces[-1][1] == paddr:
                pieces[-1] = (pieces[-1][0], pieces[-1][1] + length)
            else:
                pieces.append((paddr, length))
            cursor += length
        return pieces


__all__ = ["AddressSpaceListener", "GuestAddressSpace", "Request", "frame_iterator"]
