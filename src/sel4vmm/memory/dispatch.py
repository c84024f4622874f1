"""Fault dispatch: finding a reservation, libsel4vm's ``vm_memory_handle_fault`` and the
unhandled-fault handler.

This is the hot path of every emulated device access (unicorn's MMIO, KVM's MMIO exits), so
the page cache is probed inline and enum members are bound to module constants (on Python
3.11 ``FaultResult.HANDLED`` is an attribute lookup costing more than the probe).
"""

from __future__ import annotations

import bisect
from typing import Any

from sel4vmm.errors import Sel4VmmError
from sel4vmm.memory.anonymous import AnonymousMemory
from sel4vmm.memory.faults import FaultCallback, FaultResult, MemoryFault
from sel4vmm.memory.reservation import MapIterator, Reservation
from sel4vmm.sel4.undo import UndoLog

#: The page cache is a two-level table: a dictionary keyed by the 2 MiB block (address >>
#: 21) of lists of 512 per-page entries.  Only the small top level is hashed, so a lookup
#: among 10^5 cached pages touches a few hot objects instead of a big hash table's index,
#: entry and key, and dispatch cost stays flat as reservations grow in number.  A leaf
#: slot holds the reservation itself, not a tuple of its fields: the dispatcher touches
#: the reservation anyway (``fault.reservation``), so a hit reaches one object fewer —
#: one cache line fewer when 10^5 reservations are faulted on at random.
TLB_LEAF_BITS = 9
#: Leaves (2 MiB blocks) cached before the table is emptied and refilled.
TLB_LEAVES = 1 << 12


_HANDLED = FaultResult.HANDLED
_UNHANDLED = FaultResult.UNHANDLED
_RESTART = FaultResult.RESTART
_ERROR = FaultResult.ERROR


class FaultDispatch:
    """The lookup and fault half of :class:`~sel4vmm.memory.address_space.GuestAddressSpace`."""

    vm: object | None
    undo: UndoLog
    anon: AnonymousMemory
    last_error: str
    _tlb: dict[int, list[Reservation | None]]
    _unhandled: tuple[FaultCallback, Any] | None
    _starts: list[int]
    _reservations: list[Reservation]

    def find(self, addr: int) -> Reservation | None:
        """The reservation containing ``addr``: O(log n) bisection behind a page cache.

        Guests fault on the same device pages over and over; the cache (a two-level
        software TLB by page, emptied whenever a reservation comes or goes, see
        :data:`TLB_LEAF_BITS`) makes those lookups O(1) and flat in the number of
        reservations.
        """
        leaf = self._tlb.get(addr >> 21)
        if leaf is not None:
            cached = leaf[(addr >> 12) & 511]
            if cached is not None:
                return cached
        return self._find_slow(addr)

    def _find_slow(self, addr: int) -> Reservation | None:
        index = bisect.bisect_right(self._starts, addr) - 1
        if index >= 0:
            reservation = self._reservations[index]
            if addr < reservation.end:
                # Cache only pages the reservation covers whole: a hit then needs no range
                # check, and an address beside a sub-page reservation is never mistaken
                # for it.  Mapped reservations (RAM) are not cached: the guest reaches
                # them without faulting, and caching every page RAM reads and writes walk
                # would only cost memory.
                base = addr >> 12 << 12
                if (
                    reservation.start <= base
                    and base + 0x1000 <= reservation.end
                    and not reservation.extents
                ):
                    leaf = self._tlb.get(addr >> 21)
                    if leaf is None:
                        if len(self._tlb) >= TLB_LEAVES:
                            self._tlb.clear()
                        leaf = self._tlb[addr >> 21] = [None] * (1 << TLB_LEAF_BITS)
                    leaf[(addr >> 12) & 511] = reservation
                return reservation
        return None

    def _map_now(self, reservation: Reservation, iterator: MapIterator, cookie: Any) -> None:
        raise NotImplementedError

    def handle_fault(self, fault: MemoryFault) -> FaultResult:
        """libsel4vm's ``vm_memory_handle_fault`` and the unhandled-fault handler after it.

        As in C: a fault longer than the regular reservation it hits is ERROR (C's
        "Invalid fault region"); one that runs past the end of an anonymous
        sub-reservation is UNHANDLED; a pending deferred map is made and answers RESTART.
        Never raises because of what a guest did: a callback that raises, or a deferred
        map that fails, ends in ERROR with :attr:`last_error` saying why.
        """
        self.last_error = ""
        address = fault.address
        leaf = self._tlb.get(address >> 21)
        reservation = leaf[(address >> 12) & 511] if leaf is not None else None
        if (
            reservation is not None
            and (callback := reservation.callback) is not None
            and reservation.deferred is None
            and not reservation.anonymous
        ):
            # The hot path: a whole cached page of a regular reservation (longer than any
            # access, so C's length check passes), nothing to map first.
            fault.reservation = reservation
            try:
                result = callback(self.vm, fault, reservation.cookie)
            except Exception as error:  # a buggy device model must not take the VMM down
                self.last_error = f"{fault}: {reservation} raised {type(error).__name__}: {error}"
                return _ERROR
            if result is _HANDLED and (fault.is_write or fault.read_value is not None):
                return result
            result = self._checked(result, fault, reservation)
            return self._to_unhandled_handler(fault) if result is _UNHANDLED else result
        if reservation is None:
            reservation = self._find_slow(address)
        if reservation is not None:
            if reservation.anonymous:
                if address + fault.width > reservation.end:
                    reservation = None  # C: no sub-reservation holds the whole access
            elif fault.width > reservation.size:
                fault.reservation = reservation
                self.last_error = (
                    f"{fault} is longer than {reservation} (libsel4vm: Invalid fault region)"
                )
                return _ERROR
        fault.reservation = reservation
        if reservation is None:
            return self._unclaimed(fault)
        if reservation.deferred is not None:
            return self._map_deferred(reservation)
        callback = reservation.callback
        if callback is None:
            self.last_error = f"{fault} hit {reservation}, which has no fault callback"
            return _ERROR
        try:
            result = callback(self.vm, fault, reservation.cookie)
        except Exception as error:  # a buggy device model must not take the VMM down
            self.last_error = f"{fault}: {reservation} raised {type(error).__name__}: {error}"
            return _ERROR
        if result is _HANDLED and (fault.is_write or fault.read_value is not None):
            return result
        result = self._checked(result, fault, reservation)
        if result is _UNHANDLED:
            return self._to_unhandled_handler(fault)
        return result

    def _unclaimed(self, fault: MemoryFault) -> FaultResult:
        """No reservation holds the access: C's anonymous-region length check, then the
        unhandled-fault handler."""
        region = self.anon.region_at(fault.address)
        if region is not None and fault.width > region.size:
            self.last_error = (
                f"{fault} is longer than anonymous region [{region.start:#x}, {region.end:#x}) "
                "(libsel4vm: Invalid fault region)"
            )
            return _ERROR
        return self._to_unhandled_handler(fault)

    def _map_deferred(self, reservation: Reservation) -> FaultResult:
        assert reservation.deferred is not None
        iterator, cookie = reservation.deferred
        try:
            with self.undo.transaction():
                reservation.deferred = None
                self._map_now(reservation, iterator, cookie)
        except Sel4VmmError as error:
            reservation.deferred = (iterator, cookie)
            self.last_error = f"deferred map of {reservation} failed: {error}"
            return _ERROR
        except Exception as error:  # a buggy map iterator must not take the VMM down
            reservation.deferred = (iterator, cookie)
            self.last_error = (
                f"deferred map of {reservation}: the map iterator raised "
                f"{type(error).__name__}: {error}"
            )
            return _ERROR
        return _RESTART

    def _to_unhandled_handler(self, fault: MemoryFault) -> FaultResult:
        if self._unhandled is None:
            if not self.last_error:
                self.last_error = f"{fault}: no reservation claims this address"
            return _UNHANDLED
        callback, cookie = self._unhandled
        try:
            result = callback(self.vm, fault, cookie)
        except Exception as error:  # a buggy device model must not take the VMM down
            self.last_error = (
                f"{fault}: the unhandled-fault handler raised {type(error).__name__}: {error}"
            )
            return _ERROR
        result = self._checked(result, fault, None)
        if result is _UNHANDLED:
            self.last_error = f"{fault}: the unhandled-fault handler did not handle it"
            return _ERROR
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
            return _ERROR
        if result is _HANDLED and not fault.is_write and fault.read_value is None:
            self.last_error = f"{fault}: {_who(owner)} handled a read without giving a value"
            return _ERROR
        return result


def _who(owner: Reservation | None) -> str:
    return str(owner) if owner is not None else "the unhandled-fault handler"
