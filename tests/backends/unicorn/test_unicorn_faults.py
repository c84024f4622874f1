"""The full fault path on a real vCPU: every fault result, exceptions, PSCI, zero copy.

The guest programs are a few hand-encoded A64 instructions, so these tests need no cross
compiler; each ends with PSCI SYSTEM_OFF (``hvc #0``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest

from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout
from sel4vmm.backends.unicorn.cpu import StopReason
from sel4vmm.backends.unicorn.timer import CNTV_CTL_EL0, CNTV_CVAL_EL0, CTL_ENABLE
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.memory.address_space import frame_iterator
from sel4vmm.sel4.objects import ObjectKind
from tests.a64 import ldr_w, ldrsb_x, mov64, str_w

#: Every test here runs on both emulated-MMIO paths (conftest.py).
pytestmark = pytest.mark.usefixtures("mmio_path")

RAM = 0x4000_0000
CODE = RAM + 0x8_0000
DEVICE = 0x0A00_0000  # an emulated window the tests reserve
X = list(range(31))


# -- a tiny A64 encoder ------------------------------------------------------------------


def svc(imm: int) -> int:
    return 0xD4000001 | (imm << 5)


HVC0 = 0xD4000002
UDF0 = 0x00000000  # permanently undefined
ERET = 0xD69F03E0
ADD_X20_X20_1 = 0x91000694  # add x20, x20, #1


def system_off() -> list[int]:
    return [*mov64(0, 0x8400_0008), HVC0]


def make_board(one_to_one: bool = True) -> EmulatedBoard:
    layout = GuestLayout(ram_size=16 << 20, one_to_one=one_to_one, dma_base=None)
    return EmulatedBoard(layout, Console())


def run(board: EmulatedBoard, words: list[int]) -> StopReason:
    board.vm.ram.write(CODE, struct.pack(f"<{len(words)}I", *words))
    return board.loop.run(CODE, time_limit=10)


def reg(board: EmulatedBoard, n: int) -> int:
    from unicorn.arm64_const import UC_ARM64_REG_X0

    return board.vcpu.uc.reg_read(UC_ARM64_REG_X0 + n)


Callback = Callable[[Any, MemoryFault, Any], FaultResult]


def reserve_device(board: EmulatedBoard, callback: Callback) -> None:
    board.vm.memory.reserve_at(DEVICE, 0x1000, callback, None, label="test device")


# -- the five results --------------------------------------------------------------------
def test_handled_read_lands_in_the_register_with_sign_extension() -> None:
    board = make_board()
    seen: list[MemoryFault] = []

    def device(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        seen.append(fault)
        fault.reply(0x80 if fault.width == 1 else 0x1234_5678)
        return FaultResult.HANDLED

    reserve_device(board, device)
    program = [*mov64(1, DEVICE + 0x10), ldr_w(2, 1), ldrsb_x(3, 1), *system_off()]
    assert run(board, program) is StopReason.SYSTEM_OFF
    assert reg(board, 2) == 0x1234_5678
    assert reg(board, 3) == 0xFFFF_FFFF_FFFF_FF80
    assert [(f.address, f.width, f.is_write) for f in seen] == [
        (DEVICE + 0x10, 4, False),
        (DEVICE + 0x10, 1, False),
    ]


def test_handled_write_passes_address_width_and_value() -> None:
    board = make_board()
    seen: list[MemoryFault] = []

    def device(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        seen.append(fault)
        return FaultResult.HANDLED

    reserve_device(board, device)
    program = [*mov64(1, DEVICE + 0x24), *mov64(2, 0xCAFE_F00D), str_w(2, 1), *system_off()]
    assert run(board, program) is StopReason.SYSTEM_OFF
    assert [(f.address, f.width, f.is_write, f.value) for f in seen] == [
        (DEVICE + 0x24, 4, True, 0xCAFE_F00D)
    ]


def test_ignore_skips_the_instruction_with_no_effect_on_registers() -> None:
    board = make_board()
    reserve_device(board, lambda _vm, _fault, _cookie: FaultResult.IGNORE)
    ldr_w2_x1_post4 = 0xB8404422  # ldr w2, [x1], #4: a load with base writeback
    program = [*mov64(1, DEVICE), *mov64(2, 0xFFFF_5555_0000_5555)]
    program += [ldr_w(2, 1), str_w(2, 1), ldr_w2_x1_post4, ldrsb_x(2, 1), *system_off()]
    assert run(board, program) is StopReason.SYSTEM_OFF
    assert reg(board, 2) == 0xFFFF_5555_0000_5555  # no load wrote it, not even its top half
    assert reg(board, 1) == DEVICE  # the post-index writeback did not happen
    assert board.vcpu.faults_handled == 4


def test_restart_maps_a_deferred_reservation_and_the_access_reaches_its_frame() -> None:
    board = make_board()
    vm = board.vm
    run_ = vm.allocator.retype(ObjectKind.FRAME, 12, 1)[0]
    reservation = vm.memory.reserve_at(DEVICE, 0x1000, label="deferred")
    vm.memory.map(reservation, frame_iterator([run_], DEVICE, "rw"), defer=True)
    program = [
        *mov64(1, DEVICE + 8),
        *mov64(2, 0xA5A5_0001),
        str_w(2, 1),  # faults: RESTART, done on the new frame
        ldr_w(3, 1),  # may still be in the same slice: served from the frame too
        *system_off(),
    ]
    assert run(board, program) is StopReason.SYSTEM_OFF
    assert reg(board, 3) == 0xA5A5_0001
    assert bytes(vm.physmem.view(run_.paddr + 8, 4)) == (0xA5A5_0001).to_bytes(4, "little")
    assert DEVICE in board.address_map.extents  # unicorn now maps the frame directly


def test_unhandled_goes_to_the_vms_unhandled_fault_handler() -> None:
    board = make_board()
    calls: list[int] = []

    def handler(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        calls.append(fault.address)
        fault.reply(7)
        return FaultResult.HANDLED

    board.vm.set_unhandled_fault_handler(handler)
    program = [*mov64(1, 0x2000_0000), ldr_w(2, 1), *system_off()]
    assert run(board, program) is StopReason.SYSTEM_OFF
    assert calls == [0x2000_0000]
    assert reg(board, 2) == 7


def test_unhandled_without_a_handler_stops_with_a_diagnostic() -> None:
    board = make_board()
    program = [*mov64(1, 0x2000_0000), *mov64(2, 0x99), str_w(2, 1), *system_off()]
    assert run(board, program) is StopReason.GUEST_FAULT
    diagnostic = board.vcpu.diagnostic
    assert diagnostic is not None
    assert diagnostic.address == 0x2000_0000
    assert diagnostic.pc == CODE + 4 * 8  # the STR, after two 4-instruction moves
    assert diagnostic.registers["x2"] == 0x99
    assert "write of 0x99" in str(diagnostic)


@pytest.mark.parametrize("outcome", ["error", "raises"])
def test_error_or_a_crashing_device_model_stops_only_the_vm(outcome: str) -> None:
    board = make_board()

    def device(_vm: Any, _fault: MemoryFault, _cookie: Any) -> FaultResult:
        if outcome == "raises":
            raise RuntimeError("device model bug")
        return FaultResult.ERROR

    reserve_device(board, device)
    program = [*mov64(1, DEVICE), ldr_w(2, 1), *system_off()]
    assert run(board, program) is StopReason.GUEST_FAULT
    assert board.vcpu.diagnostic is not None
    assert str(DEVICE) in str(int(board.vcpu.diagnostic.address or 0))
    if outcome == "raises":
        assert "device model bug" in board.vcpu.diagnostic.message


# -- exceptions and PSCI -----------------------------------------------------------------
def vectors_counting_in_x20() -> bytes:
    """A vector table whose 16 entries count in x20, keep ESR in x21 and skip 4 bytes."""
    entry = struct.pack(
        "<6I",
        ADD_X20_X20_1,
        0xD5385215,  # mrs x21, esr_el1
        0xD5384037,  # mrs x23, elr_el1
        0x910012F7,  # add x23, x23, #4
        0xD5184037,  # msr elr_el1, x23
        ERET,
    )
    return b"".join(entry + bytes(128 - len(entry)) for _ in range(16))


def test_svc_and_undefined_instructions_are_vectored_to_the_guest() -> None:
    board = make_board()
    vbar = RAM + 0x10_0000
    board.vm.ram.write(vbar, vectors_counting_in_x20())
    msr_vbar = 0xD518C000 | 9  # msr vbar_el1, x9
    nop = 0xD503201F  # the handler's ELR + 4 skips it after the SVC
    mov_x22_x21 = 0xAA1503F6
    program = [*mov64(9, vbar), msr_vbar, svc(0x42), nop, mov_x22_x21, UDF0, *system_off()]
    assert run(board, program) is StopReason.SYSTEM_OFF
    assert reg(board, 20) == 2
    assert reg(board, 22) == 0x15 << 26 | 1 << 25 | 0x42  # EC=SVC64, IL, imm16
    assert reg(board, 21) >> 26 == 0  # EC=unknown for the UDF


def test_psci_version_returns_in_x0() -> None:
    board = make_board()
    program = [*mov64(0, 0x8400_0000), HVC0, 0xAA0003F3, *system_off()]  # mov x19, x0
    assert run(board, program) is StopReason.SYSTEM_OFF
    assert reg(board, 19) == 0x1_0000
    assert board.vcpu.psci_calls == 2


def test_idle_guest_with_nothing_to_wake_it_is_stopped() -> None:
    board = make_board()
    wfi_loop = [0xD503207F, 0x17FFFFFF]  # wfi; b .-4
    assert run(board, wfi_loop) is StopReason.IDLE_FOREVER


# -- zero copy -----------------------------------------------------------------------------
@pytest.mark.parametrize("one_to_one", [True, False])
def test_guest_ram_is_the_frames_memory(one_to_one: bool) -> None:
    board = make_board(one_to_one)
    target = RAM + 0x20_0000
    program = [*mov64(1, target), *mov64(2, 0x600D_CAFE), str_w(2, 1), *system_off()]
    assert run(board, program) is StopReason.SYSTEM_OFF
    ((paddr, _),) = board.vm.memory.translate(target, 4)
    assert (paddr == target) is one_to_one
    assert bytes(board.physmem.view(paddr, 4)) == (0x600D_CAFE).to_bytes(4, "little")
    assert board.vcpu.faults_handled == 0  # RAM never traps


# -- each guest access reaches a device exactly once ----------------------------------------
ADD_X4_X4_X2 = 0x8B020084
SUBS_X3_1 = 0xF1000463
B_NE_BACK = 0x54FFFFA1  # b.ne .-12


def counting_fifo(board: EmulatedBoard, exit_every_access: bool) -> list[int]:
    """A register that reads 1, 2, 3, ... and asks the vCPU to leave after each access."""
    reads: list[int] = []

    def fifo(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        reads.append(len(reads) + 1)
        fault.reply(reads[-1])
        if exit_every_access:
            board.vcpu.request_exit()  # lands just after the access: the load runs again
        return FaultResult.HANDLED

    reserve_device(board, fifo)
    return reads


@pytest.mark.parametrize("exit_every_access", [True, False])
def test_a_stop_right_after_an_access_does_not_repeat_it(exit_every_access: bool) -> None:
    board = make_board()
    reads = counting_fifo(board, exit_every_access)
    if not exit_every_access:
        # An armed timer makes the loop preempt by instruction count: slices of 7
        # instructions end everywhere in the loop, between instructions.
        board.timer.write(CNTV_CVAL_EL0, 1 << 62)
        board.timer.write(CNTV_CTL_EL0, CTL_ENABLE)
        board.loop.slice_instructions = 7
    count = 3000
    program = [*mov64(1, DEVICE), *mov64(3, count), *mov64(4, 0)]
    program += [ldr_w(2, 1), ADD_X4_X4_X2, SUBS_X3_1, B_NE_BACK, *system_off()]
    assert run(board, program) is StopReason.SYSTEM_OFF
    assert len(reads) == count
    assert reg(board, 4) == count * (count + 1) // 2  # every value was seen exactly once
    if exit_every_access:
        assert board.vcpu.replays_suppressed == count
    else:
        assert board.loop.stats.slices > count // 7


@pytest.mark.parametrize(
    ("program", "what"),
    [
        ([*mov64(1, 0x2000_0000), 0xD61F0020], "a jump to an address with no memory"),
        ([*mov64(1, 1 << 45), ldr_w(2, 1)], "a load beyond the 40-bit guest address space"),
    ],
    ids=["fetch", "beyond-ipa"],
)
def test_guest_faults_unicorn_reports_stop_the_vm_cleanly(program: list[int], what: str) -> None:
    board = make_board()
    assert run(board, [*program, *system_off()]) is StopReason.CPU_EXCEPTION, what
    diagnostic = board.vcpu.diagnostic
    assert diagnostic is not None
    assert "the emulator stopped the guest" in diagnostic.message
    assert "UNMAPPED" in diagnostic.message
