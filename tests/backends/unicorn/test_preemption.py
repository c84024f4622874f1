"""Counted slices on a real unicorn engine, on both mechanisms (backends/unicorn/preemption.py).

The guest loop below does one emulated-MMIO load per iteration and counts its iterations
in x4; a slice stopped anywhere but between instructions would run a load again on
resume, and the device would see more loads than the guest executed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from unicorn import UC_PROT_ALL
from unicorn.arm64_const import (
    UC_ARM64_REG_PC,
    UC_ARM64_REG_X1,
    UC_ARM64_REG_X3,
    UC_ARM64_REG_X4,
)

from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.engine import AArch64Engine, new_aarch64_engine
from sel4vmm.backends.unicorn.preemption import SlicePreemption, preemption_mechanism
from sel4vmm.backends.unicorn.session import bundled_guest
from sel4vmm.backends.unicorn.timer import CNTV_CTL_EL0, CNTV_CVAL_EL0, CTL_ENABLE
from sel4vmm.native import PURE_PYTHON_VARIABLE, import_error

RAM = 0x4000_0000
CODE = RAM + 0x1000
DEVICE = 0x0A00_0000
#: A64 encodings (Arm ARM): the loop is one translation block of four instructions.
LOOP = [
    0xB9400022,  # ldr w2, [x1]          (an emulated register)
    0x91000484,  # add x4, x4, #1
    0xF1000463,  # subs x3, x3, #1
    0x54FFFFA1,  # b.ne .-12
]
AFTER_LOOP = CODE + 4 * len(LOOP)

MECHANISMS = [
    pytest.param(False, id="block-budget"),
    pytest.param(True, id="emu_start-count"),
]


@pytest.fixture(params=MECHANISMS)
def pure_python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    pure: bool = request.param
    if pure:
        monkeypatch.setenv(PURE_PYTHON_VARIABLE, "1")
    else:
        monkeypatch.delenv(PURE_PYTHON_VARIABLE, raising=False)
        reason = import_error("_ucslice")
        if reason is not None:
            pytest.skip(f"the block-budget path needs the C extension: {reason}")
    yield pure


class Guest:
    """The loop on a bare engine with a device that counts the loads it serves."""

    def __init__(self, iterations: int) -> None:
        self.uc: AArch64Engine = new_aarch64_engine()
        self.uc.mem_map(RAM, 0x10000, UC_PROT_ALL)
        self.uc.mem_write(CODE, struct.pack(f"<{len(LOOP)}I", *LOOP))
        self.loads = 0

        def read(uc: object, offset: int, size: int, data: object) -> int:
            self.loads += 1
            return 0x5A

        def write(uc: object, offset: int, size: int, value: int, data: object) -> None:
            raise AssertionError("the loop never stores")

        self.uc.mmio_map(DEVICE, 0x1000, read, None, write, None)
        self.uc.reg_write(UC_ARM64_REG_X1, DEVICE)
        self.uc.reg_write(UC_ARM64_REG_X3, iterations)
        self.uc.reg_write(UC_ARM64_REG_X4, 0)
        self.uc.reg_write(UC_ARM64_REG_PC, CODE)

    @property
    def pc(self) -> int:
        return self.uc.reg_read(UC_ARM64_REG_PC)

    @property
    def done(self) -> int:
        return self.uc.reg_read(UC_ARM64_REG_X4)


def test_the_mechanism_follows_the_pure_python_switch(pure_python: bool) -> None:
    preemption = SlicePreemption(new_aarch64_engine())
    assert preemption.block_budget is not pure_python
    assert preemption_mechanism().startswith("emu_start count" if pure_python else "block budget")


def test_a_counted_slice_stops_after_its_instructions_between_instructions(
    pure_python: bool,
) -> None:
    guest = Guest(iterations=10_000)
    preemption = SlicePreemption(guest.uc)
    preemption.set_counting(True)
    preemption.run(CODE, AFTER_LOOP, 1000)
    # 1000 instructions are 250 whole iterations: a count stops before instruction 1001,
    # the budget at the start of block 251 (blocks of four instructions).
    assert guest.done == 250
    assert guest.pc == CODE
    assert guest.loads == 250
    assert preemption.budget_stops == (0 if pure_python else 1)


def test_slices_resumed_back_to_back_never_repeat_a_device_access(pure_python: bool) -> None:
    guest = Guest(iterations=5000)
    preemption = SlicePreemption(guest.uc)
    preemption.set_counting(True)
    slices = 0
    while guest.pc != AFTER_LOOP:
        # 37 is not a multiple of the block: a count stops inside the loop body, right
        # after the load in some slices; the budget stops at the block's start.
        preemption.run(guest.pc, AFTER_LOOP, 37)
        slices += 1
        assert slices <= 5000
    assert guest.done == 5000
    assert guest.loads == 5000
    assert slices >= 5000 * len(LOOP) // 40  # at most 40 instructions per slice


def test_a_plain_emu_start_after_a_spent_budget_is_not_stopped(pure_python: bool) -> None:
    # cpu.py re-runs an interrupted instruction alone with emu_start(count=1): the budget
    # of the slice before must not stop it.
    guest = Guest(iterations=100)
    preemption = SlicePreemption(guest.uc)
    preemption.set_counting(True)
    preemption.run(CODE, AFTER_LOOP, 8)
    assert guest.done == 2 and guest.pc == CODE
    guest.uc.emu_start(CODE, AFTER_LOOP, count=1)
    assert guest.pc == CODE + 4 and guest.loads == 3


def test_counting_off_runs_the_slice_to_its_end(pure_python: bool) -> None:
    guest = Guest(iterations=3000)
    preemption = SlicePreemption(guest.uc)
    preemption.set_counting(True)
    preemption.run(CODE, AFTER_LOOP, 400)
    assert guest.done == 100
    preemption.set_counting(False)
    preemption.run(guest.pc, AFTER_LOOP, 0)
    assert guest.pc == AFTER_LOOP and guest.done == 3000 and guest.loads == 3000


def test_the_event_loop_preempts_a_timer_armed_guest_with_the_chosen_mechanism(
    pure_python: bool,
) -> None:
    # The bundled memtest guest with a far timer armed: every slice is a counted one.
    board = EmulatedBoard(GuestLayout(ram_size=16 << 20, dma_base=None), Console())
    entry = board.load(bundled_guest("memtest").read_bytes())
    board.timer.write(CNTV_CVAL_EL0, 1 << 62)
    board.timer.write(CNTV_CTL_EL0, CTL_ENABLE)
    board.loop.slice_instructions = 20_000
    assert board.loop.run(entry, time_limit=120) is StopReason.SYSTEM_OFF
    assert b"memtest: OK" in board.console.output
    preemption = board.loop.preemption[board.vcpu.index]
    assert preemption.counting and preemption.block_budget is not pure_python
    assert board.loop.stats.slices > 10
    if pure_python:
        assert preemption.budget_stops == 0
    else:  # all but the last slice (which ends in PSCI SYSTEM_OFF) ran out of budget
        assert preemption.budget_stops >= board.loop.stats.slices - 2
