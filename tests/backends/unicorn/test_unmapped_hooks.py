"""The unmapped-access hooks cover the holes of the memory map and never guest RAM
(backends/unicorn/unmapped_hooks.py): a hook over RAM keeps every RAM store on unicorn's
slow path."""

from __future__ import annotations

from typing import Any

import pytest

from sel4vmm.backends.unicorn.board import EmulatedBoard
from sel4vmm.backends.unicorn.cpu import StopReason
from sel4vmm.backends.unicorn.unmapped_hooks import holes
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.memory.address_space import frame_iterator
from sel4vmm.sel4.objects import ObjectKind
from tests.backends.unicorn.test_unicorn_faults import (
    DEVICE,
    ldr_w,
    make_board,
    mov64,
    reg,
    run,
    str_w,
    system_off,
)

pytestmark = pytest.mark.usefixtures("mmio_path")

END = 1 << 64


def test_holes_are_the_complement_of_the_mapped_ranges() -> None:
    assert holes([]) == [(0, END)]
    assert holes([(0x1000, 0x2000)]) == [(0, 0x1000), (0x2000, END)]
    # adjacent and overlapping ranges leave no hole between them; order does not matter
    assert holes([(0x3000, 0x4000), (0x1000, 0x2000), (0x2000, 0x3000)]) == [
        (0, 0x1000),
        (0x4000, END),
    ]
    assert holes([(0, 0x2000), (0x1000, 0x1800)]) == [(0x2000, END)]
    assert holes([(0, END)]) == []


def overlaps(hooked: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(lo < end and start < hi for lo, hi in hooked)


def mapped(board: EmulatedBoard) -> list[tuple[int, int]]:
    return [(e.guest_addr, e.guest_end) for e in board.address_map.extents.values()]


def test_guest_ram_is_never_hooked_and_every_hole_is() -> None:
    board = make_board()
    hooked = board.address_map.unmapped_hooks.hooked
    assert hooked == holes(mapped(board))
    for start, end in mapped(board):
        assert not overlaps(hooked, start, end)
    assert overlaps(hooked, DEVICE, DEVICE + 0x1000)


def test_a_frame_mapped_during_a_slice_leaves_the_hooks_after_it() -> None:
    board = make_board()
    vm = board.vm
    frame = vm.allocator.retype(ObjectKind.FRAME, 12, 1)[0]
    reservation = vm.memory.reserve_at(DEVICE, 0x1000, label="deferred")
    vm.memory.map(reservation, frame_iterator([frame], DEVICE, "rw"), defer=True)
    program = [*mov64(1, DEVICE), *mov64(2, 0x1234), str_w(2, 1), *system_off()]
    assert run(board, program) is StopReason.SYSTEM_OFF
    assert DEVICE in board.address_map.extents
    assert not overlaps(board.address_map.unmapped_hooks.hooked, DEVICE, DEVICE + 0x1000)


def test_an_unmapped_frame_is_hooked_again_and_faults_reach_the_vmm() -> None:
    board = make_board()
    vm = board.vm
    frame = vm.allocator.retype(ObjectKind.FRAME, 12, 1)[0]
    reservation = vm.memory.reserve_at(DEVICE, 0x1000, label="frame")
    vm.memory.map(reservation, frame_iterator([frame], DEVICE, "rw"))
    assert not overlaps(board.address_map.unmapped_hooks.hooked, DEVICE, DEVICE + 0x1000)
    vm.memory.free(reservation)
    assert overlaps(board.address_map.unmapped_hooks.hooked, DEVICE, DEVICE + 0x1000)
    seen: list[int] = []

    def unhandled(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        seen.append(fault.address)
        fault.reply(0x77)
        return FaultResult.HANDLED

    vm.memory.set_unhandled_fault_handler(unhandled)
    program = [*mov64(1, DEVICE + 4), ldr_w(3, 1), *system_off()]
    assert run(board, program) is StopReason.SYSTEM_OFF
    assert seen == [DEVICE + 4] and reg(board, 3) == 0x77
