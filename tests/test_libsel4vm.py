"""The C-shaped layer: same names, C return conventions, reasons kept."""

from __future__ import annotations

from typing import Any

from sel4vmm import libsel4vm as c
from sel4vmm.memory import MemoryFault
from sel4vmm.memory.frames import frame_iterator
from sel4vmm.sel4.objects import ObjectKind
from sel4vmm.vm import DeviceUntypedRequest, PoolRequest, VirtualMachine
from tests.helpers import make_platform


def make_vm() -> VirtualMachine:
    return VirtualMachine.create(
        "vm0", make_platform(ram_size=256 << 20), pools=[PoolRequest(24, 4)]
    )


def test_ram_functions_follow_c_conventions() -> None:
    vm = make_vm()
    assert c.vm_memory_init(vm) == 0
    assert c.vm_ram_register_at(vm, 0x40000000, 0x100000, False) == 0
    assert c.vm_ram_register_at(vm, 0x40000000, 0x100000, False) == -1
    assert "overlaps" in c.vm_last_error(vm)
    c.vm_ram_mark_allocated(vm, 0x40000000, 0x1000)
    assert c.vm_ram_allocate(vm, 0x1000) == 0x40001000
    assert c.vm_ram_allocate(vm, 0x200000) == 0
    c.vm_ram_free(vm, 0x40000000, 0x2000)
    assert c.vm_ram_find_largest_free_region(vm) == (0, 0x40000000, 0x100000)
    buf = bytearray(b"0123456789")
    assert c.vm_ram_touch(vm, 0x40000FFB, 10, c.vm_guest_ram_write_callback, buf) == 0
    out = bytearray(10)
    assert c.vm_ram_touch(vm, 0x40000FFB, 10, c.vm_guest_ram_read_callback, out) == 0
    assert out == buf
    assert c.vm_ram_touch(vm, 0x3FFFFFF0, 10, c.vm_guest_ram_read_callback, out) == -1


def test_reservations_and_faults_through_c_names() -> None:
    vm = make_vm()

    def callback(vm: Any, fault: MemoryFault, cookie: Any) -> c.memory_fault_result_t:
        fault.reply(cookie)
        return c.FAULT_HANDLED

    reservation = c.vm_reserve_memory_at(vm, 0x8000000, 0x10000, callback, 42)
    assert reservation is not None
    assert c.vm_get_reservation_memory_region(reservation) == (0x8000000, 0x10000)
    assert c.vm_reserve_memory_at(vm, 0x8000000, 0x1000, callback, 0) is None
    fault = MemoryFault(0x8000004, 4, False)
    assert vm.memory.handle_fault(fault) is c.FAULT_HANDLED
    assert fault.read_value == 42
    assert c.vm_memory_make_anon(vm, 0x90000000, 0x10000) == 0
    anon, addr = c.vm_reserve_anon_memory(vm, 0x1000, 0x1000, callback, 1)
    assert anon is not None and addr == 0x90000000
    assert c.vm_free_reserved_memory(vm, anon) == 0
    assert c.vm_free_reserved_memory(vm, anon) == -1
    # C's bump pointer has moved past the freed reservation: freed space is reused only
    # when the bump allocation fails.
    assert c.vm_ram_register(vm, 0x2000) == 0x90001000
    frame = c.vm_frame_t(cptr=0, rights="rw", vaddr=0, size_bits=12)
    assert frame.cptr == 0


# -- issue 11: libsel4vm's answers -------------------------------------------------------
# Expected values are what libsel4vm's C code answers: seL4/seL4_projects_libs
# libsel4vm/src/guest_memory.c and guest_ram.c at commit 0e06beb, over seL4/seL4_libs
# libsel4utils/src/vspace/vspace.c at d8abd95 (reservations page-rounded).


def tag(vm: Any, fault: MemoryFault, cookie: Any) -> c.memory_fault_result_t:
    fault.reply(cookie)
    return c.FAULT_HANDLED


def dispatch(vm: VirtualMachine, addr: int, length: int) -> c.memory_fault_result_t:
    return vm.memory.handle_fault(MemoryFault(addr, length, False))


def test_item1_fault_past_an_anonymous_sub_reservation_is_unhandled() -> None:
    # find_anon_reservation_by_addr wants addr + len <= res.addr + res.size.
    vm = make_vm()
    assert c.vm_memory_make_anon(vm, 0x10000000, 0x10000) == 0
    reservation, addr = c.vm_reserve_anon_memory(vm, 0x1000, 0x1000, tag, 7)
    assert reservation is not None and addr == 0x10000000
    assert dispatch(vm, 0x10000FFC, 4) is c.FAULT_HANDLED
    seen: list[int] = []

    def unhandled(vm: Any, fault: MemoryFault, cookie: Any) -> c.memory_fault_result_t:
        seen.append(fault.address)
        return c.FAULT_IGNORE

    c.vm_register_unhandled_mem_fault_callback(vm, unhandled, None)
    assert dispatch(vm, 0x10000FFE, 4) is c.FAULT_IGNORE
    assert seen == [0x10000FFE]


def test_item2_fault_longer_than_a_regular_reservation_is_an_error() -> None:
    # vm_memory_handle_fault: (addr + size) > (addr + res.size) -> FAULT_ERROR.
    vm = make_vm()
    assert c.vm_reserve_memory_at(vm, 0x9000000, 2, tag, 1) is not None
    assert dispatch(vm, 0x9000000, 4) is c.FAULT_ERROR
    assert "Invalid fault region" in vm.memory.last_error
    assert dispatch(vm, 0x9000000, 2) is c.FAULT_HANDLED
    assert dispatch(vm, 0x9000002, 1) is c.FAULT_UNHANDLED  # past the exact end


def test_item3_anonymous_reservations_keep_the_callers_size() -> None:
    vm = make_vm()
    assert c.vm_memory_make_anon(vm, 0x10000000, 0x10000) == 0
    reservation, _ = c.vm_reserve_anon_memory(vm, 0x800, 0x1000, tag, 1)
    assert reservation is not None
    assert c.vm_get_reservation_memory_region(reservation) == (0x10000000, 0x800)
    assert dispatch(vm, 0x10000900, 4) is c.FAULT_UNHANDLED


def test_item4_bump_allocation_per_region_never_straddles() -> None:
    vm = make_vm()
    assert c.vm_memory_make_anon(vm, 0x10001000, 0x100000) == 0
    assert c.vm_reserve_anon_memory(vm, 0x1000, 0x10000, tag, 1)[1] == 0x10010000
    assert c.vm_reserve_anon_memory(vm, 0x1000, 0x1000, tag, 2)[1] == 0x10011000
    vm = make_vm()
    assert c.vm_memory_make_anon(vm, 0x10000000, 0x2000) == 0
    assert c.vm_memory_make_anon(vm, 0x10002000, 0x2000) == 0
    assert c.vm_reserve_anon_memory(vm, 0x1000, 0x1000, tag, 1)[1] == 0x10000000
    assert c.vm_reserve_anon_memory(vm, 0x2000, 0x1000, tag, 2)[1] == 0x10002000


def test_item5_ram_allocate_is_first_fit_without_rounding() -> None:
    vm = make_vm()
    assert c.vm_ram_register_at(vm, 0x40000000, 0x100000, False) == 0
    assert c.vm_ram_allocate(vm, 0x800) == 0x40000000
    assert c.vm_ram_allocate(vm, 0x1000) == 0x40000800
    before = vm.ram.regions()
    assert c.vm_ram_allocate(vm, 0) == 0x40001800  # the first free region's start
    assert vm.ram.regions() == before


def test_item6_ram_register_keeps_the_exact_size() -> None:
    vm = make_vm()
    assert c.vm_memory_make_anon(vm, 0x50000000, 0x100000) == 0
    assert c.vm_ram_register(vm, 0x1800) == 0x50000000
    assert [(r.start, r.size) for r in vm.ram.regions()] == [(0x50000000, 0x1800)]
    assert vm.resources().objects[("frame", 12)] == 2  # the frames are page-rounded
    assert c.vm_ram_register(vm, 0x1000) == 0x50002000  # the bump moved a whole page


def test_item7_largest_free_region_follows_cs_4gib_rule_for_vtx_guests() -> None:
    # CONFIG_X86_64_VTX_64BIT_GUESTS: start + size < UINT32_MAX, followed as written, so a
    # region ending exactly at 4 GiB is skipped as C skips it.
    from sel4vmm.sel4.arch import X86_64
    from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
    from sel4vmm.sel4.platform import Sel4Platform

    physmem = PhysicalMemory([MemoryRange(0, 8 << 30, name="ram")])
    vm = VirtualMachine.create("x86", Sel4Platform(physmem, X86_64), pools=[PoolRequest(24, 4)])
    assert vm.vtx_64bit_guests
    assert c.vm_ram_register_at(vm, 0x100000, 0x100000, False) == 0
    assert c.vm_ram_register_at(vm, 0xFFE00000, 0x200000, False) == 0  # ends at 4 GiB
    assert c.vm_ram_register_at(vm, 0x100200000, 0x400000, False) == 0
    assert c.vm_ram_find_largest_free_region(vm) == (0, 0x100000, 0x100000)
    vm.vtx_64bit_guests = False
    assert c.vm_ram_find_largest_free_region(vm) == (0, 0x100200000, 0x400000)


def test_items8_and_9_mapping_covers_every_page_the_reservation_touches() -> None:
    vm = make_vm()
    runs = vm.allocator.retype(ObjectKind.FRAME, 12, 4)
    sub_page = c.vm_reserve_memory_at(vm, 0x9000000, 0x800, tag, 1)
    assert sub_page is not None
    assert c.vm_map_reservation(vm, sub_page, frame_iterator(runs[:1], 0x9000000), None) == 0
    assert [(e.guest_addr, e.size) for e in sub_page.extents] == [(0x9000000, 0x1000)]
    # An unaligned start: C maps only the first page; every covering page is mapped here.
    unaligned = c.vm_reserve_memory_at(vm, 0x9010800, 0x1000, tag, 2)
    assert unaligned is not None
    iterator = frame_iterator(vm.allocator.retype(ObjectKind.FRAME, 12, 2), 0x9010000)
    assert c.vm_map_reservation(vm, unaligned, iterator, None) == 0, c.vm_last_error(vm)
    assert [(e.guest_addr, e.size) for e in unaligned.extents] == [(0x9010000, 0x2000)]


def test_item10_unaligned_ram_and_anonymous_regions_are_accepted() -> None:
    vm = make_vm()
    assert c.vm_ram_register_at(vm, 0x40000800, 0x1000, False) == 0, c.vm_last_error(vm)
    assert [(r.start, r.size) for r in vm.ram.regions()] == [(0x40000800, 0x1000)]
    vm.ram.write(0x40000800, b"a" * 0x1000)
    assert vm.ram.read(0x400017FF, 1) == b"a"
    assert c.vm_memory_make_anon(vm, 0x10000800, 0x3000) == 0
    assert vm.memory.anonymous_regions() == [(0x10000800, 0x10003800)]
    # The bump starts at the region's exact start and rounds up to the alignment.
    assert c.vm_reserve_anon_memory(vm, 0x1000, 0x1000, tag, 1)[1] == 0x10001000
    assert c.vm_reserve_anon_memory(vm, 0x1000, 0x800, tag, 2)[1] == 0x10002000


def test_item11_a_second_map_replaces_a_pending_deferred_map() -> None:
    vm = make_vm()
    reservation = c.vm_reserve_memory_at(vm, 0x9000000, 0x1000, tag, 1)
    assert reservation is not None
    runs = vm.allocator.retype(ObjectKind.FRAME, 12, 2)
    vm.memory.map(reservation, frame_iterator(runs[:1], 0x9000000), defer=True)
    second = frame_iterator(vm.allocator.retype(ObjectKind.FRAME, 12, 1), 0x9000000)
    assert c.vm_map_reservation(vm, reservation, second, None) == 0, c.vm_last_error(vm)
    assert reservation.deferred is None and reservation.mapped
    assert reservation.extents[0].paddr != runs[0].paddr
    # A mapped reservation cannot be mapped again (C's vspace refuses the pages too).
    assert c.vm_map_reservation(vm, reservation, second, None) == -1


def test_item12_non_power_of_two_alignment_rounds_by_modulo() -> None:
    vm = make_vm()
    assert c.vm_memory_make_anon(vm, 0x10000000, 0x100000) == 0
    assert c.vm_reserve_anon_memory(vm, 0x1000, 0x1000, tag, 1)[1] == 0x10000000
    # ROUND_UP(0x10001000, 0x3000) = 0x10002000 (libutils: n + (b - n % b)).
    assert c.vm_reserve_anon_memory(vm, 0x1000, 0x3000, tag, 2)[1] == 0x10002000


def test_item13_reservations_reach_48_bits_but_frames_only_the_ipa() -> None:
    vm = make_vm()
    high = c.vm_reserve_memory_at(vm, 1 << 44, 0x1000, tag, 1)
    assert high is not None
    assert dispatch(vm, (1 << 44) + 8, 4) is c.FAULT_HANDLED
    iterator = frame_iterator(vm.allocator.retype(ObjectKind.FRAME, 12, 1), 1 << 44)
    assert c.vm_map_reservation(vm, high, iterator, None) == -1
    assert "40-bit IPA" in c.vm_last_error(vm)
    assert c.vm_reserve_memory_at(vm, (1 << 48) - 0x1000, 0x2000, tag, 2) is None
    assert "48-bit" in c.vm_last_error(vm)


def test_c_refuses_a_null_fault_callback() -> None:
    vm = make_vm()
    assert c.vm_reserve_memory_at(vm, 0x9000000, 0x1000, None, None) is None
    assert c.vm_last_error(vm) == "Failed to reserve vm reservation: NULL fault callback"
    assert c.vm_memory_make_anon(vm, 0x10000000, 0x10000) == 0
    assert c.vm_reserve_anon_memory(vm, 0x1000, 0x1000, None, None) == (None, 0)
    assert vm.memory.reservations() == []


def test_c_refuses_a_zero_length_touch_outside_ram() -> None:
    vm = make_vm()
    assert c.vm_ram_register_at(vm, 0x40000000, 0x2000, False) == 0
    out = bytearray()
    assert c.vm_ram_touch(vm, 0x50000000, 0, c.vm_guest_ram_read_callback, out) == -1
    assert c.vm_ram_touch(vm, 0x40001000, 0, c.vm_guest_ram_read_callback, out) == 0
    assert c.vm_ram_touch(vm, 0x40002000, 0, c.vm_guest_ram_read_callback, out) == 0  # end


def test_touch_returns_what_the_callback_returned() -> None:
    # vm_ram_touch returns vspace_access_page_with_callback's result: the callback's.
    vm = make_vm()
    assert c.vm_ram_register_at(vm, 0x40000000, 0x2000, False) == 0
    assert c.vm_ram_touch(vm, 0x40000000, 0x2000, lambda *args: 5, None) == 5


# -- the documented fixes (departures from C), one test each ------------------------------


def test_fix_anonymous_reservations_can_be_freed_and_reused_after_the_bump() -> None:
    vm = make_vm()
    assert c.vm_memory_make_anon(vm, 0x10000000, 0x3000) == 0
    first, _ = c.vm_reserve_anon_memory(vm, 0x1000, 0x1000, tag, 1)
    assert first is not None
    assert c.vm_free_reserved_memory(vm, first) == 0  # C: -1, "Cannot free anonymous"
    assert c.vm_reserve_anon_memory(vm, 0x1000, 0x1000, tag, 2)[1] == 0x10001000  # bump
    assert c.vm_reserve_anon_memory(vm, 0x1000, 0x1000, tag, 3)[1] == 0x10002000  # bump
    assert c.vm_reserve_anon_memory(vm, 0x1000, 0x1000, tag, 4)[1] == 0x10000000  # reuse


def test_fix_ram_free_frees() -> None:
    vm = make_vm()
    assert c.vm_ram_register_at(vm, 0x40000000, 0x2000, False) == 0
    assert c.vm_ram_allocate(vm, 0x2000) == 0x40000000
    c.vm_ram_free(vm, 0x40000000, 0x2000)  # a no-op in C
    assert c.vm_ram_allocate(vm, 0x2000) == 0x40000000


def test_fix_touch_callbacks_get_the_exact_address_and_copies_honour_offset() -> None:
    vm = make_vm()
    assert c.vm_ram_register_at(vm, 0x40000000, 0x3000, False) == 0
    seen: list[tuple[int, int, int]] = []

    def record(vm: Any, addr: int, view: memoryview, size: int, offset: int, cookie: Any) -> int:
        seen.append((addr, size, offset))
        return 0

    assert c.vm_ram_touch(vm, 0x40000FF0, 0x1020, record, None) == 0
    # C hands the first callback 0x40000000 (the page-aligned address).
    assert seen == [(0x40000FF0, 0x10, 0), (0x40001000, 0x1000, 0x10), (0x40002000, 0x10, 0x1010)]
    data = bytes(range(256)) * 17
    assert c.vm_ram_touch(vm, 0x40000F00, len(data), c.vm_guest_ram_write_callback, data) == 0
    out = bytearray(len(data))
    assert c.vm_ram_touch(vm, 0x40000F00, len(data), c.vm_guest_ram_read_callback, out) == 0
    assert bytes(out) == data  # C copies every chunk to/from the buffer's start


def test_fix_a_failed_immediate_map_leaves_no_iterator_armed() -> None:
    vm = make_vm()
    reservation = c.vm_reserve_memory_at(vm, 0x9000000, 0x2000, tag, 1)
    assert reservation is not None
    one_frame = frame_iterator(vm.allocator.retype(ObjectKind.FRAME, 12, 1), 0x9000000)
    assert c.vm_map_reservation(vm, reservation, one_frame, None) == -1
    assert reservation.deferred is None and not reservation.mapped
    # C's next fault would run the armed iterator again; here the callback answers.
    assert dispatch(vm, 0x9000000, 4) is c.FAULT_HANDLED


def test_fix_freeing_an_unmapped_2mib_reservation_leaves_it_usable() -> None:
    vm = make_vm()
    reservation = c.vm_reserve_memory_at(vm, 0x20000000, 0x200000, tag, 1)
    assert reservation is not None
    assert c.vm_free_reserved_memory(vm, reservation) == 0
    assert c.vm_reserve_memory_at(vm, 0x20000000, 0x200000, tag, 2) is not None


def test_fix_a_range_wrapping_past_2_64_is_refused() -> None:
    vm = make_vm()
    assert c.vm_reserve_memory_at(vm, (1 << 64) - 0x1000, 0x2000, tag, 1) is None


def test_fix_overlap_is_checked_on_every_page_of_an_unaligned_range() -> None:
    vm = make_vm()
    assert c.vm_reserve_memory_at(vm, 0x9001000, 0x1000, tag, 1) is not None
    # [0x9000800, 0x9001800) touches 0x9001000's page: sel4utils skips that last page.
    assert c.vm_reserve_memory_at(vm, 0x9000800, 0x1000, tag, 2) is None
    assert [r.start for r in vm.memory.reservations()] == [0x9001000]
    assert dispatch(vm, 0x9001000, 4) is c.FAULT_HANDLED  # the neighbour is intact


def test_fix_the_anonymous_fit_cannot_underflow() -> None:
    vm = make_vm()
    assert c.vm_memory_make_anon(vm, 0x10000000, 0x10000) == 0
    # C: size - (ROUND_UP(addr, 2^36) - addr) underflows and hands out 0x1000000000.
    assert c.vm_reserve_anon_memory(vm, 0x1000, 1 << 36, tag, 1) == (None, 0)


def test_fix_marking_may_cross_regions_and_touch_may_cross_allocations() -> None:
    vm = make_vm()
    assert c.vm_ram_register_at(vm, 0x40000000, 0x4000, False) == 0
    c.vm_ram_mark_allocated(vm, 0x40000000, 0x2000)
    # C: no single region holds [0x40001000, 0x40003000), so it silently does nothing.
    c.vm_ram_mark_allocated(vm, 0x40001000, 0x2000)
    assert [(r.start, r.size, r.allocated) for r in vm.ram.regions()] == [
        (0x40000000, 0x3000, True),
        (0x40003000, 0x1000, False),
    ]
    # C's is_ram_region wants one region to hold the range, so this touch fails there.
    out = bytearray(0x2000)
    assert c.vm_ram_touch(vm, 0x40002000, 0x2000, c.vm_guest_ram_read_callback, out) == 0


def test_c_refuses_null_reservations_and_iterators() -> None:
    # guest_memory.c's own messages for NULL arguments.
    vm = make_vm()
    assert c.vm_free_reserved_memory(vm, None) == -1
    assert c.vm_last_error(vm) == "Failed to free reserved memory: Invalid reservation"
    assert c.vm_map_reservation(vm, None, lambda addr, cookie: None, None) == -1
    assert c.vm_last_error(vm) == "Failed to map vm reservation: Invalid NULL reservation given"
    reservation = c.vm_reserve_memory_at(vm, 0x9000000, 0x1000, tag, 1)
    assert reservation is not None
    assert c.vm_map_reservation(vm, reservation, None, None) == -1
    assert c.vm_last_error(vm) == "Failed to map vm reservation: Invalid map iterator given"


def test_item10_unaligned_one_to_one_ram_is_backed_at_its_own_pages() -> None:
    # ram_ut_alloc_iterator retypes each frame at ROUND_DOWN(addr, 4 KiB): IPA == PA.
    from sel4vmm.sel4.physmem import MemoryRange

    vm = VirtualMachine.create(
        "vm0",
        make_platform(
            ram_size=256 << 20, device_reserved=[MemoryRange(0x48000000, 0x200000, name="dma")]
        ),
        pools=[PoolRequest(24, 1)],
        device_untypeds=[DeviceUntypedRequest(0x48000000, 21)],
    )
    assert c.vm_ram_register_at(vm, 0x48000800, 0x1800, True) == 0, c.vm_last_error(vm)
    assert vm.ram.physical_pieces(0x48000800, 0x1800) == [(0x48000800, 0x48000800, 0x1800)]
    assert [
        (e.guest_addr, e.paddr, e.size) for r in vm.memory.reservations() for e in r.extents
    ] == [(0x48000000, 0x48000000, 0x2000)]
