"""The guest-physical address space of one VM (libsel4vm ``guest_memory.h``).

Reservations claim guest-physical ranges.  A reservation is either *mapped* — frames are
behind it and the guest touches memory directly — or *emulated*: every access faults into
the VMM, which asks the reservation's callback.  Deferred reservations are mapped on their
first fault, which then answers RESTART.

Differences from libsel4vm, each a bug there and tested here: zero-size and overlapping
reservations are refused (overlap is page-granular, as the C code's vspace reservations
are); anonymous reservations can be freed and their space reused; a map that fails
part-way is rolled back; the alignment arithmetic of anonymous reservations cannot
underflow; lookups are O(log n) by bisection instead of a list walk.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from sel4vmm.errors import AddressSpaceError, Sel4VmmError
from sel4vmm.memory.faults import FaultCallback, FaultResult, MemoryFault
from sel4vmm.memory.reservation import MapIterator, MappedExtent, Reservation, VmFrame
from sel4vmm.memory.stage2 import Stage2Tables
from sel4vmm.sel4.allocator import Request
from sel4vmm.sel4.cspace import CSpace
from sel4vmm.sel4.objects import ObjectKind, ObjectRun
from sel4vmm.sel4.undo import UndoLog

if TYPE_CHECKING:
    from sel4vmm.sel4.arch import Arch


#: Entries of the page -> reservation cache before it is emptied and refilled.
TLB_ENTRIES = 1 << 17


class AddressSpaceListener(Protocol):
    """What a backend implements to keep its view (unicorn maps, KVM slots) in step."""

    def extent_mapped(self, extent: MappedExtent) -> None: ...

    def extent_unmapped(self, extent: MappedExtent) -> None: ...


def _frame_rights(rights: str) -> tuple[bool, bool]:
    rights = rights.lower()
    if not rights or set(rights) - set("rwx") or "r" not in rights:
        raise AddressSpaceError(
            f"frame rights '{rights}' are not a readable combination of r, w and x",
            fix="use 'r', 'rw', 'rx' or 'rwx'",
        )
    return "w" in rights, "x" in rights


class GuestAddressSpace:
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
        self.limit = 1 << arch.guest_address_bits
        self._starts: list[int] = []
        self._reservations: list[Reservation] = []
        #: Anonymous regions made with :meth:`make_anon`: (start, end), sorted.
        self._anon_regions: list[tuple[int, int]] = []
        #: Free parts of the anonymous regions: (start, end), sorted, coalesced.
        self._anon_free: list[tuple[int, int]] = []
        self._listeners: list[AddressSpaceListener] = []
        self._unhandled: tuple[FaultCallback, Any] | None = None
        self._tlb: dict[int, Reservation] = {}
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

    # -- lookup --------------------------------------------------------------------------
    def find(self, addr: int) -> Reservation | None:
        """The reservation containing ``addr``: O(log n) bisection behind a page cache.

        Guests fault on the same device pages over and over; the cache (a software TLB
        keyed by page number, emptied whenever a reservation comes or goes) makes those
        lookups O(1) and keeps dispatch cost flat as reservations grow in number.
        """
        page = addr >> 12
        cached = self._tlb.get(page)
        if cached is not None:
            return cached
        index = bisect.bisect_right(self._starts, addr) - 1
        if index >= 0:
            reservation = self._reservations[index]
            if addr < reservation.end:
                # Cache only pages the reservation covers whole: a hit then needs no range
                # check, and an address beside a sub-page reservation is never mistaken
                # for it.
                base = page << 12
                if reservation.start <= base and base + 0x1000 <= reservation.end:
                    if len(self._tlb) >= TLB_ENTRIES:
                        self._tlb.clear()
                    self._tlb[page] = reservation
                return reservation
        return None

    def reservations(self) -> list[Reservation]:
        return list(self._reservations)

    def anonymous_regions(self) -> list[tuple[int, int]]:
        return list(self._anon_regions)

    def extents(self) -> list[MappedExtent]:
        return [e for r in self._reservations for e in r.extents]

    def __len__(self) -> int:
        return len(self._reservations)

    # -- reserving -----------------------------------------------------------------------
    def _page_span(self, addr: int, size: int) -> tuple[int, int]:
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
                f"{self.arch.guest_address_bits}-bit guest-physical address space",
                fix=f"keep it below {self.limit:#x}",
            )

    def _conflict(self, addr: int, size: int) -> str | None:
        """What already claims a page of ``[addr, addr + size)``, if anything."""
        lo, hi = self._page_span(addr, size)
        index = bisect.bisect_left(self._starts, hi)
        if index > 0:
            prev = self._reservations[index - 1]
            _plo, phi = self._page_span(prev.start, prev.size)
            if phi > lo:
                return str(prev)
        for start, end in self._anon_regions:
            if start < hi and lo < end:
                return f"anonymous region [{start:#x}, {end:#x})"
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
        """``vm_reserve_memory_at``: claim ``[addr, addr + size)``."""
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
        """``vm_memory_make_anon``: a range that :meth:`reserve_anon` may allocate from."""
        self._check_range(addr, size, "anonymous region")
        if addr % self.page_size or size % self.page_size:
            raise AddressSpaceError(
                f"anonymous region [{addr:#x}, {addr + size:#x}) is not page aligned",
                fix=f"align address and size to {self.page_size:#x}",
            )
        conflict = self._conflict(addr, size)
        if conflict is not None:
            raise AddressSpaceError(
                f"cannot make [{addr:#x}, {addr + size:#x}) anonymous: it overlaps {conflict}",
                fix="choose a free range",
            )
        bisect.insort(self._anon_regions, (addr, addr + size))
        self._anon_release(addr, addr + size)

    def _anon_release(self, start: int, end: int) -> None:
        free = self._anon_free
        index = bisect.bisect_left(free, (start, end))
        if index > 0 and free[index - 1][1] == start:
            index -= 1
            start = free[index][0]
            del free[index]
        if index < len(free) and free[index][0] == end:
            end = free[index][1]
            del free[index]
        free.insert(index, (start, end))

    def _anon_take(self, start: int, end: int) -> None:
        free = self._anon_free
        index = bisect.bisect_right(free, (start, float("inf"))) - 1
        lo, hi = free[index]
        del free[index]
        if end < hi:
            free.insert(index, (end, hi))
        if lo < start:
            free.insert(index, (lo, start))

    def reserve_anon(
        self,
        size: int,
        align: int = 0,
        callback: FaultCallback | None = None,
        cookie: Any = None,
        *,
        label: str = "",
    ) -> Reservation:
        """``vm_reserve_anon_memory``: ``size`` bytes from anonymous memory, ``align``ed."""
        align = align or self.page_size
        if align & (align - 1):
            raise AddressSpaceError(
                f"alignment {align:#x} is not a power of two", fix="use a power of two"
            )
        if size <= 0:
            raise AddressSpaceError(
                "cannot reserve an empty anonymous region", fix="ask for more than 0 bytes"
            )
        size = (size + self.page_size - 1) // self.page_size * self.page_size
        for start, end in self._anon_free:
            aligned = (start + align - 1) // align * align
            # Compare end points, not "end - aligned >= size": no unsigned underflow here.
            if aligned + size <= end:
                self._anon_take(aligned, aligned + size)
                self.undo.record(partial(self._anon_release, aligned, aligned + size))
                reservation = Reservation(
                    aligned, size, callback, cookie, anonymous=True, label=label
                )
                self._insert(reservation)
                return reservation
        largest = max((e - s for s, e in self._anon_free), default=0)
        raise AddressSpaceError(
            f"no anonymous memory for {size:#x} bytes aligned to {align:#x} "
            f"(largest free anonymous range: {largest:#x} bytes)",
            fix="make more guest-physical memory anonymous (vm_memory_make_anon) or ask for less",
        )

    def free(self, reservation: Reservation) -> None:
        """``vm_free_reserved_memory``: unmap and forget a reservation (anonymous too)."""
        if self.find(reservation.start) is not reservation:
            raise AddressSpaceError(
                f"{reservation} is not a live reservation of this VM",
                fix="free each reservation once",
            )
        with self.undo.transaction():
            self._unmap(reservation)
            self._remove(reservation)
            self.undo.record(lambda: self._link(reservation))
            if reservation.anonymous:
                self._anon_release(reservation.start, reservation.end)
                self.undo.record(lambda: self._anon_take(reservation.start, reservation.end))

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

        With ``defer`` the iterator runs on the first fault in the reservation instead.
        A failure part-way unmaps everything this call mapped (libsel4vm leaves it half
        mapped).
        """
        if self.find(reservation.start) is not reservation:
            raise AddressSpaceError(f"{reservation} is not a live reservation of this VM")
        if reservation.mapped or reservation.deferred is not None:
            raise AddressSpaceError(
                f"{reservation} is already mapped", fix="free it and reserve again to remap"
            )
        if defer:
            reservation.deferred = (iterator, cookie)
            self.undo.record(lambda: setattr(reservation, "deferred", None))
            return
        self._map_now(reservation, iterator, cookie)

    def _map_now(self, reservation: Reservation, iterator: MapIterator, cookie: Any) -> None:
        frames: list[tuple[ObjectRun, int, VmFrame]] = []
        used: set[tuple[int, int]] = set()
        current = reservation.start
        while current < reservation.end:
            try:
                frame = iterator(current, cookie)
            except Sel4VmmError as error:
                raise AddressSpaceError(
                    f"mapping {reservation} failed at {current:#x}: {error.message}",
                    fix=error.fix,
                ) from None
            run, index = self._check_frame(reservation, current, frame)
            if (id(run), index) in used:
                raise AddressSpaceError(
                    f"mapping {reservation} at {current:#x}: frame cap {frame.cptr} is already "
                    "mapped earlier in this reservation",
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
                    *_frame_rights(frame.rights),
                    device=run.device,
                ),
                run,
                index,
                1,
            )
            for run, index, frame in frames
        ]
        self._commit(reservation, extents)

    def _frame_cap(self, cptr: int) -> tuple[ObjectRun, int] | None:
        """The frame run and index behind a cap slot, or None if it holds no frame cap."""
        found = self.cspace.lookup(cptr)
        if found is None:
            return None
        owner, index = found
        if isinstance(owner, ObjectRun) and owner.kind is ObjectKind.FRAME:
            return owner, index
        return None

    def _set_mapped(self, caps: list[tuple[int, int]], mapped: bool) -> None:
        for cptr, count in caps:
            found = self._frame_cap(cptr)
            if found is not None:
                run, index = found
                if run.mapped is None:
                    run.mapped = bytearray(run.count)
                run.mapped[index : index + count] = (b"\x01" if mapped else b"\x00") * count

    def _check_frame(
        self, reservation: Reservation, current: int, frame: VmFrame
    ) -> tuple[ObjectRun, int]:
        where = f"mapping {reservation} at {current:#x}"
        if frame.cptr == 0:
            raise AddressSpaceError(
                f"{where}: the frame iterator returned a null cap",
                fix="make the iterator return a frame for every address of the reservation",
            )
        found = self._frame_cap(frame.cptr)
        if found is None:
            raise AddressSpaceError(
                f"{where}: cap {frame.cptr} is not a frame cap of this VM",
                fix="return caps of frames the VM's allocator made",
            )
        run, index = found
        if run.size_bits != frame.size_bits:
            raise AddressSpaceError(
                f"{where}: cap {frame.cptr} is a 2^{run.size_bits} frame, not 2^{frame.size_bits}",
                fix="report the frame's real size_bits",
            )
        size = 1 << frame.size_bits
        if (
            frame.vaddr % size
            or not (reservation.start <= frame.vaddr and frame.vaddr + size <= reservation.end)
            or not (frame.vaddr <= current < frame.vaddr + size)
        ):
            raise AddressSpaceError(
                f"{where}: frame for {frame.vaddr:#x} (2^{frame.size_bits}) is misaligned or "
                f"does not cover {current:#x} inside the reservation",
                fix="return frames aligned to their size that cover the asked address",
            )
        if run.mapped is not None and run.mapped[index]:
            raise AddressSpaceError(
                f"{where}: frame cap {frame.cptr} is already mapped",
                fix="map a copy of the cap (seL4 maps each frame cap once)",
            )
        return run, index

    def map_runs(
        self, reservation: Reservation, guest_addr: int, runs: list[ObjectRun], rights: str = "rwx"
    ) -> None:
        """Map whole frame runs consecutively from ``guest_addr`` (RAM's fast path)."""
        writable, executable = _frame_rights(rights)
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
        if guest_addr < reservation.start or cursor > reservation.end:
            raise AddressSpaceError(
                f"frames for [{guest_addr:#x}, {cursor:#x}) overflow {reservation}"
            )
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

    # -- faults --------------------------------------------------------------------------
    def handle_fault(self, fault: MemoryFault) -> FaultResult:
        """libsel4vm's fault path: owner's callback, deferred maps, the unhandled handler.

        Never raises because of what a guest did: a callback that raises, or a deferred map
        that fails, ends in ERROR with :attr:`last_error` saying why.
        """
        self.last_error = ""
        reservation = self.find(fault.address)
        fault.reservation = reservation
        result: FaultResult
        if reservation is None:
            result = FaultResult.UNHANDLED
        elif reservation.deferred is not None:
            iterator, cookie = reservation.deferred
            try:
                with self.undo.transaction():
                    reservation.deferred = None
                    self._map_now(reservation, iterator, cookie)
            except Sel4VmmError as error:
                reservation.deferred = (iterator, cookie)
                self.last_error = f"deferred map of {reservation} failed: {error}"
                return FaultResult.ERROR
            return FaultResult.RESTART
        elif reservation.callback is None:
            self.last_error = f"{fault} hit {reservation}, which has no fault callback"
            return FaultResult.ERROR
        else:
            try:
                result = reservation.callback(self.vm, fault, reservation.cookie)
            except Exception as error:  # a buggy device model must not take the VMM down
                self.last_error = f"{fault}: {reservation} raised {type(error).__name__}: {error}"
                return FaultResult.ERROR
            if result is FaultResult.HANDLED and (fault.is_write or fault.read_value is not None):
                return result
            result = self._checked(result, fault, reservation)
        if result is FaultResult.UNHANDLED and self._unhandled is not None:
            callback, cookie = self._unhandled
            try:
                result = callback(self.vm, fault, cookie)
            except Exception as error:  # a buggy device model must not take the VMM down
                self.last_error = (
                    f"{fault}: the unhandled-fault handler raised {type(error).__name__}: {error}"
                )
                return FaultResult.ERROR
            result = self._checked(result, fault, None)
            if result is FaultResult.UNHANDLED:
                self.last_error = f"{fault}: the unhandled-fault handler did not handle it"
                result = FaultResult.ERROR
        if result is FaultResult.UNHANDLED and not self.last_error:
            self.last_error = f"{fault}: no reservation claims this address"
        return result

    def _checked(
        self, result: object, fault: MemoryFault, owner: Reservation | None
    ) -> FaultResult:
        """A callback's answer, or ERROR with a reason when it is not a proper one.

        ``owner`` is only turned into text when something is wrong: this runs on the hot
        path of every emulated device access.
        """
        if not isinstance(result, FaultResult):
            self.last_error = f"{fault}: {_who(owner)} returned {result!r}, not a FaultResult"
            return FaultResult.ERROR
        if result is FaultResult.HANDLED and not fault.is_write and fault.read_value is None:
            self.last_error = f"{fault}: {_who(owner)} handled a read without giving a value"
            return FaultResult.ERROR
        return result


def _who(owner: Reservation | None) -> str:
    return str(owner) if owner is not None else "the unhandled-fault handler"


def frame_iterator(
    runs: Iterable[ObjectRun], base: int, rights: str = "rw"
) -> Callable[[int, Any], VmFrame]:
    """A ``memory_map_iterator_fn`` over frame runs laid out consecutively from ``base``."""
    table: list[tuple[int, ObjectRun]] = []
    cursor = base
    for run in runs:
        table.append((cursor, run))
        cursor += run.size
    starts = [s for s, _ in table]

    def iterator(addr: int, _cookie: Any) -> VmFrame:
        index = bisect.bisect_right(starts, addr) - 1
        if index < 0:
            return VmFrame(0, rights, addr, 12)
        start, run = table[index]
        offset = addr - start
        if offset >= run.size:
            return VmFrame(0, rights, addr, 12)
        i = offset >> run.size_bits
        return VmFrame(run.cptr(i), rights, start + (i << run.size_bits), run.size_bits)

    return iterator


__all__ = ["AddressSpaceListener", "GuestAddressSpace", "Request", "frame_iterator"]
