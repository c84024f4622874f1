"""libsel4vm's C API, name for name, over the Pythonic API.

For people porting a VMM or reading libsel4vm code: each function here has the C name,
takes the C arguments in the C order and returns what the C function returns (``None`` for
NULL, ``-1`` / ``0`` for status, out-parameters as extra tuple members).  The reason for a
failure, which C only logs with ``ZF_LOGE``, is kept in :func:`vm_last_error`.

========================================  ==================================================
C (guest_memory.h / guest_ram.h)          Python API
========================================  ==================================================
``vm_memory_init``                        :class:`sel4vmm.vm.VirtualMachine` (created ready)
``vm_reserve_memory_at``                  :meth:`GuestAddressSpace.reserve_at`
``vm_memory_make_anon``                   :meth:`GuestAddressSpace.make_anon`
``vm_reserve_anon_memory``                :meth:`GuestAddressSpace.reserve_anon`
``vm_free_reserved_memory``               :meth:`GuestAddressSpace.free`
``vm_map_reservation``                    :meth:`GuestAddressSpace.map`
``vm_get_reservation_memory_region``      :meth:`Reservation.region`
``vm_register_unhandled_mem_fault_callback`` :meth:`GuestAddressSpace.set_unhandled_fault_handler`
``vm_ram_register``                       :meth:`GuestRam.register`
``vm_ram_register_at``                    :meth:`GuestRam.register_at`
``vm_ram_mark_allocated``                 :meth:`GuestRam.mark_allocated`
``vm_ram_allocate``                       :meth:`GuestRam.allocate`
``vm_ram_free``                           :meth:`GuestRam.free` (a no-op in C)
``vm_ram_find_largest_free_region``       :meth:`GuestRam.largest_free`
``vm_ram_touch``                          :meth:`GuestRam.touch`
``vm_guest_ram_read_callback``            touch callback copying into ``cookie``
``vm_guest_ram_write_callback``           touch callback copying from ``cookie``
``vm_frame_t``                            :class:`sel4vmm.memory.VmFrame`
``memory_fault_result_t``                 :class:`sel4vmm.memory.FaultResult`
========================================  ==================================================

Same answers as C (seL4_projects_libs ``libsel4vm/src/guest_memory.c``, ``guest_ram.c``, and
seL4_libs' libsel4vspace/libsel4utils reservations) for every sequence C handles correctly:
the same addresses (bump allocation per anonymous region, exact sizes, first fit in RAM),
the same fault routing (C's fault-length checks), the same refusals (a NULL fault callback,
zero sizes, a zero-length touch outside RAM).  The only departures are fixes, each tested
in ``tests/test_libsel4vm.py``:

* ``vm_free_reserved_memory`` frees anonymous reservations (C refuses); their space is
  reused only when bump allocation fails, so C's sequences keep C's addresses.
* ``vm_ram_free`` frees (a no-op in C).
* ``vm_map_reservation`` of a reservation with an unaligned start maps every page it
  touches (C maps only the first); a map that fails part-way is rolled back and leaves no
  iterator armed (C leaves it half mapped with the iterator armed, so the next fault maps).
* ``vm_ram_touch`` hands each callback the exact guest address of its chunk (C hands the
  page-aligned address); ``vm_guest_ram_read_callback``/``write_callback`` copy at
  ``offset`` (C ignores it, so multi-page copies are wrong there).
* Overlap is checked on every page a range touches (sel4utils skips the last page of an
  unaligned range, and a refused overlap there can un-reserve a live neighbour's page); a
  range whose end wraps past 2^64 is refused (C accepts it); freeing an unmapped
  reservation over an aligned 2 MiB block leaves the block usable (sel4utils loses it).
* The anonymous fit test cannot underflow (C hands out memory past the region when the
  alignment lands beyond it); ``vm_reserve_anon_memory`` with alignment 0 means a page (C
  divides by zero); zero-size anonymous reservations are refused (C makes one no address
  reaches).
* ``vm_ram_mark_allocated`` and ``vm_ram_touch`` may cross from allocated to free RAM (C's
  lookups want one region to hold the range: the mark is silently ignored, the touch fails);
  marking or freeing a range that is not all RAM is refused (C ignores it).
* RAM may use 2 MiB and 1 GiB frames (C: 4 KiB only); every failed operation leaves
  nothing changed.
* ``vm_ram_find_largest_free_region`` follows C's 4 GiB rule for x86 64-bit VT-x guests
  as written (``start + size < UINT32_MAX``), off-by-one included, so a ported VMM picks
  the same region.
* Reservations are accepted up to libsel4vspace's 48 bits; mapping frames beyond the
  stage-2's IPA size is refused, naming that limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sel4vmm.errors import Sel4VmmError
from sel4vmm.memory.faults import FaultCallback, FaultResult
from sel4vmm.memory.guest_ram import TouchCallback, TouchStopped
from sel4vmm.memory.reservation import MapIterator, Reservation, VmFrame
from sel4vmm.vm import VirtualMachine

vm_frame_t = VmFrame
memory_fault_result_t = FaultResult
FAULT_HANDLED = FaultResult.HANDLED
FAULT_UNHANDLED = FaultResult.UNHANDLED
FAULT_RESTART = FaultResult.RESTART
FAULT_IGNORE = FaultResult.IGNORE
FAULT_ERROR = FaultResult.ERROR

_last_error: dict[int, str] = {}
T = TypeVar("T")


def vm_last_error(vm: VirtualMachine) -> str:
    """Why the last call on ``vm`` through this module failed ('' if it did not)."""
    return _last_error.get(id(vm), "")


def _guard(vm: VirtualMachine, failure: T, call: Callable[[], T]) -> T:
    try:
        result = call()
    except Sel4VmmError as error:
        _last_error[id(vm)] = str(error)
        return failure
    _last_error[id(vm)] = ""
    return result


def _status(vm: VirtualMachine, call: Callable[[], object]) -> int:
    def run() -> int:
        call()
        return 0

    return _guard(vm, -1, run)


def vm_memory_init(vm: VirtualMachine) -> int:
    """Initialise the memory interface; a :class:`VirtualMachine` is born initialised."""
    return 0


def _refuse(vm: VirtualMachine, message: str) -> None:
    _last_error[id(vm)] = message


def vm_reserve_memory_at(
    vm: VirtualMachine, addr: int, size: int, fault_callback: FaultCallback | None, cookie: Any
) -> Reservation | None:
    if fault_callback is None:
        _refuse(vm, "Failed to reserve vm reservation: NULL fault callback")
        return None
    return _guard(vm, None, lambda: vm.memory.reserve_at(addr, size, fault_callback, cookie))


def vm_memory_make_anon(vm: VirtualMachine, addr: int, size: int) -> int:
    return _status(vm, lambda: vm.memory.make_anon(addr, size))


def vm_reserve_anon_memory(
    vm: VirtualMachine, size: int, align: int, fault_callback: FaultCallback | None, cookie: Any
) -> tuple[Reservation | None, int]:
    """Returns (reservation or None, addr) — ``addr`` is C's out-parameter."""
    if fault_callback is None:
        _refuse(vm, "Failed to reserve anon memory region: NULL fault callback")
        return None, 0
    reservation = _guard(
        vm, None, lambda: vm.memory.reserve_anon(size, align, fault_callback, cookie)
    )
    return reservation, reservation.start if reservation is not None else 0


def vm_free_reserved_memory(vm: VirtualMachine, reservation: Reservation | None) -> int:
    if reservation is None:
        _refuse(vm, "Failed to free reserved memory: Invalid reservation")
        return -1
    return _status(vm, lambda: vm.memory.free(reservation))


def vm_map_reservation(
    vm: VirtualMachine,
    reservation: Reservation | None,
    map_iterator: MapIterator | None,
    cookie: Any,
) -> int:
    if reservation is None:
        _refuse(vm, "Failed to map vm reservation: Invalid NULL reservation given")
        return -1
    if map_iterator is None:
        _refuse(vm, "Failed to map vm reservation: Invalid map iterator given")
        return -1
    return _status(vm, lambda: vm.memory.map(reservation, map_iterator, cookie))


def vm_get_reservation_memory_region(reservation: Reservation) -> tuple[int, int]:
    """Returns (addr, size) — C's two out-parameters."""
    return reservation.region()


def vm_register_unhandled_mem_fault_callback(
    vm: VirtualMachine, fault_callback: FaultCallback, cookie: Any
) -> int:
    vm.memory.set_unhandled_fault_handler(fault_callback, cookie)
    return 0


def vm_ram_register(vm: VirtualMachine, size: int) -> int:
    """Returns the guest address of the new RAM, 0 on failure (as in C)."""
    return _guard(vm, 0, lambda: vm.ram.register(size))


def vm_ram_register_at(vm: VirtualMachine, start: int, size: int, untyped: bool) -> int:
    return _status(vm, lambda: vm.ram.register_at(start, size, one_to_one=untyped))


def vm_ram_mark_allocated(vm: VirtualMachine, start: int, size: int) -> None:
    _status(vm, lambda: vm.ram.mark_allocated(start, size))


def vm_ram_allocate(vm: VirtualMachine, size: int) -> int:
    """Returns the address of the allocation, 0 on failure (as in C)."""
    return _guard(vm, 0, lambda: vm.ram.allocate(size))


def vm_ram_free(vm: VirtualMachine, start: int, size: int) -> None:
    _status(vm, lambda: vm.ram.free(start, size))


def vm_ram_find_largest_free_region(vm: VirtualMachine) -> tuple[int, int, int]:
    """Returns (status, addr, size); x86 64-bit VT-x guests get C's 4 GiB rule."""
    found = _guard(vm, None, lambda: vm.ram.largest_free(below_4gib=vm.vtx_64bit_guests))
    if found is None:
        return -1, 0, 0
    return 0, found[0], found[1]


def vm_ram_touch(
    vm: VirtualMachine, addr: int, size: int, touch_callback: TouchCallback, cookie: Any
) -> int:
    """0, -1 when the range is not RAM, or what a callback returned that stopped the walk."""
    try:
        vm.ram.touch(addr, size, touch_callback, cookie)
    except TouchStopped as stopped:
        _last_error[id(vm)] = str(stopped)
        return stopped.code
    except Sel4VmmError as error:
        _last_error[id(vm)] = str(error)
        return -1
    _last_error[id(vm)] = ""
    return 0


def vm_guest_ram_read_callback(
    vm: VirtualMachine, guest_addr: int, vaddr: memoryview, size: int, offset: int, buf: Any
) -> int:
    """Touch callback: copy guest memory into ``buf[offset:offset + size]``."""
    memoryview(buf).cast("B")[offset : offset + size] = vaddr[:size]
    return 0


def vm_guest_ram_write_callback(
    vm: VirtualMachine, guest_addr: int, vaddr: memoryview, size: int, offset: int, buf: Any
) -> int:
    """Touch callback: copy ``buf[offset:offset + size]`` into guest memory."""
    vaddr[:size] = memoryview(buf).cast("B")[offset : offset + size]
    return 0
