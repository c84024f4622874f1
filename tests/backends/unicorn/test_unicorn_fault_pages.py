"""Fault pages on the C MMIO trampoline (``backends/unicorn/fault_pages.py``).

The behaviour every fault result must have is tested on both paths in
``test_unicorn_faults.py``; these tests check that the C path is really the one serving
the accesses, how it hands the unusual ones to the Python path, and that the pure-Python
switch really switches.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from unicorn.arm64_const import UC_ARM64_REG_X0

from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout
from sel4vmm.backends.unicorn.cpu import StopReason
from sel4vmm.backends.unicorn.fault_pages import TrampolinePages
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.memory.address_space import frame_iterator
from sel4vmm.sel4.objects import ObjectKind
from tests.a64 import ldr_w, mov64, str_w

RAM = 0x4000_0000
CODE = RAM + 0x8_0000
DEVICE = 0x0A00_0000
HVC0 = 0xD4000002
SUBS_X3_1 = 0xF1000463  # subs x3, x3, #1
ADD_X4_X4_X2 = 0x8B020084  # add x4, x4, x2
B_NE_BACK_12 = 0x54FFFFA1  # b.ne .-12


SYSTEM_OFF = [*mov64(0, 0x8400_0008), HVC0]


def make_board() -> EmulatedBoard:
    return EmulatedBoard(GuestLayout(ram_size=16 << 20, dma_base=None), Console())


def run(board: EmulatedBoard, words: list[int]) -> StopReason:
    board.vm.ram.write(CODE, struct.pack(f"<{len(words)}I", *words))
    return board.loop.run(CODE, time_limit=10)


def reg(board: EmulatedBoard, n: int) -> int:
    return int(board.vcpu.uc.reg_read(UC_ARM64_REG_X0 + n))


def loop_of_loads(count: int) -> list[int]:
    """``x4 = sum of count 32-bit loads from DEVICE``, then SYSTEM_OFF."""
    program = [*mov64(1, DEVICE), *mov64(3, count), *mov64(4, 0)]
    return [*program, ldr_w(2, 1), ADD_X4_X4_X2, SUBS_X3_1, B_NE_BACK_12, *SYSTEM_OFF]


def trampolines(board: EmulatedBoard) -> TrampolinePages:
    pages = board.vcpu.trampolines
    assert pages is not None
    return pages


#: The C path only (``mmio_path`` skips it, saying why, when the extension is not built).
C_PATH_ONLY = pytest.mark.parametrize("mmio_path", ["c"], indirect=True)


@C_PATH_ONLY
def test_handled_accesses_are_finished_by_the_trampoline(mmio_path: str) -> None:
    board = make_board()

    def register(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        fault.reply(3)
        return FaultResult.HANDLED

    board.vm.memory.reserve_at(DEVICE, 0x1000, register, label="register")
    assert board.mmio_path.startswith("C extension")
    assert run(board, loop_of_loads(500)) is StopReason.SYSTEM_OFF
    assert reg(board, 4) == 1500
    pages = trampolines(board)
    assert pages.fast_accesses == 500
    assert board.vcpu.faults_handled == 500
    assert board.address_map.fault_pages == {DEVICE}


@C_PATH_ONLY
def test_an_access_that_stops_the_vcpu_is_recorded_and_its_replay_is_answered(
    mmio_path: str,
) -> None:
    board = make_board()
    reads: list[int] = []

    def doorbell(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        reads.append(len(reads) + 1)
        fault.reply(reads[-1])
        board.vcpu.request_exit()  # as the GIC doorbell does: the load runs again
        return FaultResult.HANDLED

    board.vm.memory.reserve_at(DEVICE, 0x1000, doorbell, label="doorbell")
    count = 300
    assert run(board, loop_of_loads(count)) is StopReason.SYSTEM_OFF
    assert len(reads) == count  # the device saw each load once
    assert reg(board, 4) == count * (count + 1) // 2
    # Each load went through the trampoline; its re-run took the Python path and got the
    # recorded answer.
    assert trampolines(board).fast_accesses == count
    assert board.vcpu.replays_suppressed == count


@C_PATH_ONLY
def test_a_map_queued_during_a_slice_sends_later_accesses_to_the_frames(mmio_path: str) -> None:
    board = make_board()
    vm = board.vm
    frames = vm.allocator.retype(ObjectKind.FRAME, 12, 1)[0]
    reservation = vm.memory.reserve_at(DEVICE, 0x1000, label="deferred")
    vm.memory.map(reservation, frame_iterator([frames], DEVICE, "rw"), defer=True)
    program = [*mov64(1, DEVICE + 8), *mov64(2, 0xA5A5_0001), str_w(2, 1), ldr_w(3, 1)]
    assert run(board, [*program, *SYSTEM_OFF]) is StopReason.SYSTEM_OFF
    assert reg(board, 3) == 0xA5A5_0001
    assert bytes(vm.physmem.view(frames.paddr + 8, 4)) == (0xA5A5_0001).to_bytes(4, "little")
    assert board.vcpu.faults_handled == 1  # the RESTART; the load was served by the frame
    assert board.address_map.fault_pages == set()  # the frame replaced the fault page


def test_an_error_raised_inside_unicorn_surfaces_after_the_slice(
    mmio_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = make_board()
    board.vm.memory.reserve_at(
        DEVICE, 0x1000, lambda _vm, _fault, _cookie: FaultResult.ERROR, label="broken"
    )

    def broken_answer(_fault: MemoryFault, _result: FaultResult) -> int:
        raise RuntimeError("the VMM's own bug")

    monkeypatch.setattr(board.vcpu.faults, "answer", broken_answer)
    # A write: the binding's read callback would also complain that it returned None.
    with pytest.raises(RuntimeError, match="the VMM's own bug"):
        run(board, [*mov64(1, DEVICE), str_w(2, 1), *SYSTEM_OFF])


@pytest.mark.parametrize("mmio_path", ["python"], indirect=True)
def test_sel4vmm_pure_python_keeps_the_binding_callbacks(mmio_path: str) -> None:
    board = make_board()
    assert board.mmio_path.startswith("pure Python")
    assert "SEL4VMM_PURE_PYTHON=1" in board.mmio_path
    assert board.vcpu.trampolines is None
    assert board.address_map.trampolines is None

    def register(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        fault.reply(2)
        return FaultResult.HANDLED

    board.vm.memory.reserve_at(DEVICE, 0x1000, register, label="register")
    assert run(board, loop_of_loads(10)) is StopReason.SYSTEM_OFF
    assert reg(board, 4) == 20
    assert board.vcpu.faults_handled == 10


def test_frames_mapped_by_a_device_mid_slice_serve_the_next_access(mmio_path: str) -> None:
    board = make_board()
    vm = board.vm
    frames = vm.allocator.retype(ObjectKind.FRAME, 12, 1)[0]
    vm.physmem.view(frames.paddr, 4)[:] = (0x600D).to_bytes(4, "little")

    def register(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        fault.reply(0xBAD)
        return FaultResult.HANDLED

    window = vm.memory.reserve_at(DEVICE + 0x1000, 0x1000, register, label="window")

    def map_window(_vm: Any, _fault: MemoryFault, _cookie: Any) -> FaultResult:
        # Maps while the vCPU runs: unicorn's map changes only after the slice.
        vm.memory.map(window, frame_iterator([frames], DEVICE + 0x1000, "rw"))
        return FaultResult.HANDLED

    vm.memory.reserve_at(DEVICE, 0x1000, map_window, label="switch")
    program = [*mov64(1, DEVICE), *mov64(5, DEVICE + 0x1000), ldr_w(2, 5), str_w(2, 1)]
    program += [ldr_w(3, 5), *SYSTEM_OFF]
    assert run(board, program) is StopReason.SYSTEM_OFF
    assert reg(board, 3) == 0x600D
