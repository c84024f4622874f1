"""The C MMIO trampoline on a real unicorn AArch64 engine (sel4vmm.native.unicorn_mmio)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest
from unicorn import UC_PROT_ALL, UcError
from unicorn.arm64_const import UC_ARM64_REG_PC, UC_ARM64_REG_X2

from sel4vmm.backends.unicorn.engine import new_aarch64_engine
from sel4vmm.errors import Sel4VmmError
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.native import PURE_PYTHON_VARIABLE
from sel4vmm.native.unicorn_mmio import (
    MmioTrampoline,
    install_mmio_trampoline,
    trampoline_unavailable_reason,
)
from sel4vmm.sel4.arch import AARCH64
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.a64 import mov64

RAM = 0x4000_0000
CODE = RAM + 0x1000
DEVICE = 0x0A00_0000

#: A64 encodings (Arm ARM, LDR/STR (immediate, unsigned offset) with offset 0).
LOAD = {1: 0x39400022, 2: 0x79400022, 4: 0xB9400022, 8: 0xF9400022}  # ldr{b,h} w2/x2, [x1]
STORE = {1: 0x39000023, 2: 0x79000023, 4: 0xB9000023, 8: 0xF9000023}  # str{b,h} w3/x3, [x1]


@pytest.fixture(autouse=True)
def trampoline_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PURE_PYTHON_VARIABLE, raising=False)
    reason = trampoline_unavailable_reason()
    if reason is not None:
        pytest.skip(f"the C trampoline is not built: {reason}")


class Rig:
    """A unicorn engine with RAM for code and a VM whose reservation is the device."""

    def __init__(self) -> None:
        self.uc = new_aarch64_engine()
        self.uc.mem_map(RAM, 0x10_0000, UC_PROT_ALL)
        board = Sel4Platform(PhysicalMemory([MemoryRange(RAM, 32 << 20, name="ram")]), AARCH64)
        self.vm = VirtualMachine.create("t", board, pools=[PoolRequest(24, 1)])
        self.seen: list[tuple[int, int, bool, int]] = []
        self.kept: list[MemoryFault] = []
        self.answer = FaultResult.HANDLED
        self.keep = False

    def device(self, _vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        self.seen.append((fault.address, fault.width, fault.is_write, fault.value))
        if self.keep:
            self.kept.append(fault)
        if not fault.is_write and self.answer is FaultResult.HANDLED:
            fault.reply(0x1122_3344_5566_7788 ^ fault.address)
        return self.answer

    def run(self, mmio: MmioTrampoline, words: list[int]) -> None:
        code = struct.pack(f"<{len(words)}I", *words)
        self.uc.mem_write(CODE, code)
        mmio.run(CODE, CODE + len(code))


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = Rig()
    rig.vm.memory.reserve_at(DEVICE, 0x2000, rig.device, label="device")
    yield rig
    rig.vm.physmem.close()


@pytest.mark.parametrize("width", [1, 2, 4, 8])
def test_reads_and_writes_of_every_width_go_through_handle_fault(rig: Rig, width: int) -> None:
    mmio = install_mmio_trampoline(rig.uc, DEVICE, 0x2000, rig.vm.memory.handle_fault)
    address = DEVICE + 0x1008
    value = 0x8877_6655_4433_2211 & ((1 << (8 * width)) - 1)
    rig.run(mmio, [*mov64(1, address), *mov64(3, value), STORE[width], LOAD[width]])
    # unicorn hands an 8-byte MMIO access to the callback as two 4-byte halves, low first.
    pieces = [(address, width)] if width < 8 else [(address, 4), (address + 4, 4)]
    writes = [
        (a, w, True, (value >> (8 * (a - address))) & ((1 << (8 * w)) - 1)) for a, w in pieces
    ]
    reads = [(a, w, False, 0) for a, w in pieces]
    assert rig.seen == writes + reads
    expected = 0
    for a, w in pieces:
        expected |= ((0x1122_3344_5566_7788 ^ a) & ((1 << (8 * w)) - 1)) << (8 * (a - address))
    assert rig.uc.reg_read(UC_ARM64_REG_X2) == expected
    assert (mmio.fast_accesses, mmio.general_accesses, mmio.faults_made) == (2 * len(pieces), 0, 1)


def test_a_fault_a_device_keeps_is_never_reused(rig: Rig) -> None:
    rig.keep = True
    mmio = install_mmio_trampoline(rig.uc, DEVICE, 0x2000, rig.vm.memory.handle_fault)
    rig.run(mmio, [*mov64(1, DEVICE + 0x10), LOAD[4], *mov64(1, DEVICE + 0x20), LOAD[2]])
    first, second = rig.kept
    assert first is not second
    assert (first.address, first.width, first.read_value) == (DEVICE + 0x10, 4, 0x5F66_7798)
    assert (second.address, second.width, second.read_value) == (DEVICE + 0x20, 2, 0x77A8)
    assert first.reservation is second.reservation is rig.vm.memory.find(DEVICE)
    assert mmio.faults_made == 2


def test_ignore_reads_zero_and_other_answers_go_to_complete(rig: Rig) -> None:
    completed: list[tuple[int, FaultResult]] = []

    def complete(fault: MemoryFault, result: FaultResult) -> int:
        completed.append((fault.address, result))
        return 0x77

    rig.answer = FaultResult.RESTART
    mmio = install_mmio_trampoline(
        rig.uc, DEVICE, 0x2000, rig.vm.memory.handle_fault, complete=complete
    )
    rig.run(mmio, [*mov64(1, DEVICE + 4), LOAD[4]])
    assert completed == [(DEVICE + 4, FaultResult.RESTART)]
    assert rig.uc.reg_read(UC_ARM64_REG_X2) == 0x77

    rig.answer = FaultResult.IGNORE
    other = Rig()
    other.vm.memory.reserve_at(DEVICE, 0x1000, rig.device)
    default = install_mmio_trampoline(other.uc, DEVICE, 0x1000, other.vm.memory.handle_fault)
    other.uc.reg_write(UC_ARM64_REG_X2, 0x55)
    other.run(default, [*mov64(1, DEVICE), LOAD[8]])
    assert other.uc.reg_read(UC_ARM64_REG_X2) == 0
    other.vm.physmem.close()


def test_an_error_answer_without_complete_stops_the_run_with_a_diagnostic(rig: Rig) -> None:
    rig.answer = FaultResult.ERROR
    mmio = install_mmio_trampoline(rig.uc, DEVICE, 0x2000, rig.vm.memory.handle_fault)
    with pytest.raises(Sel4VmmError, match=r"read of 4 bytes from 0xa000000: answered ERROR"):
        rig.run(mmio, [*mov64(1, DEVICE), LOAD[4], LOAD[4], LOAD[4]])
    assert len(rig.seen) == 1  # the engine stopped at the first access


def test_an_exception_in_the_dispatch_stops_the_engine_and_is_raised(rig: Rig) -> None:
    def broken(_fault: MemoryFault) -> FaultResult:
        raise ZeroDivisionError("device model bug")

    mmio = install_mmio_trampoline(rig.uc, DEVICE, 0x2000, broken)
    with pytest.raises(ZeroDivisionError, match="device model bug"):
        rig.run(mmio, [*mov64(1, DEVICE), LOAD[4], LOAD[4]])
    assert mmio.fast_accesses == 1
    mmio.check()  # raised once, then forgotten


def test_a_bound_page_gets_its_own_callable_and_others_the_dispatch(rig: Rig) -> None:
    mmio = install_mmio_trampoline(rig.uc, DEVICE, 0x2000, rig.vm.memory.handle_fault)
    page_faults: list[int] = []

    def page(fault: MemoryFault) -> FaultResult:
        page_faults.append(fault.address)
        fault.reply(0x42)
        return FaultResult.HANDLED

    mmio.bind_page(DEVICE + 0x1000, page)
    rig.run(mmio, [*mov64(1, DEVICE + 0x1004), LOAD[4], *mov64(1, DEVICE + 4), LOAD[4]])
    assert page_faults == [DEVICE + 0x1004]
    assert rig.seen == [(DEVICE + 4, 4, False, 0)]
    mmio.bind_page(DEVICE + 0x1000, None)
    rig.run(mmio, [*mov64(1, DEVICE + 0x1004), LOAD[4]])
    assert page_faults == [DEVICE + 0x1004] and len(rig.seen) == 2
    with pytest.raises(Sel4VmmError, match=r"page 0xa002000 is outside the MMIO range"):
        mmio.bind_page(DEVICE + 0x2000, page)


def test_an_access_that_stops_the_vcpu_is_recorded_and_replayed_once() -> None:
    """The replay-safe resume: the stopped instruction runs again with the same answer."""
    rig = Rig()
    recorded: list[tuple[int, int, bool, int, int]] = []
    replayed: list[tuple[int, int, bool, int]] = []
    mmio: MmioTrampoline | None = None

    def stopping_device(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        rig.seen.append((fault.address, fault.width, fault.is_write, fault.value))
        assert mmio is not None
        rig.uc.emu_stop()  # e.g. the device raised an interrupt the vCPU must take
        mmio.stopping = True
        fault.reply(0xABCD)
        return FaultResult.HANDLED

    def general(address: int, width: int, is_write: bool, value: int) -> int:
        replayed.append((address, width, is_write, value))
        assert recorded and recorded[0][:4] == (address, width, is_write, value)
        return recorded.pop(0)[4]

    rig.vm.memory.reserve_at(DEVICE, 0x1000, stopping_device)
    mmio = install_mmio_trampoline(
        rig.uc,
        DEVICE,
        0x1000,
        rig.vm.memory.handle_fault,
        general=general,
        record=lambda *access: recorded.append(access),
    )
    words = [*mov64(1, DEVICE + 0x30), LOAD[4], *mov64(4, 7)]
    code = struct.pack(f"<{len(words)}I", *words)
    rig.uc.mem_write(CODE, code)
    mmio.run(CODE, CODE + len(code))
    assert recorded == [(DEVICE + 0x30, 4, False, 0, 0xABCD)]
    load_pc = CODE + 4 * 4
    assert rig.uc.reg_read(UC_ARM64_REG_PC) == load_pc  # the load runs again on resume
    mmio.stopping, mmio.bypass = False, True
    mmio.run(load_pc, load_pc + 4, count=1)
    mmio.bypass = False
    mmio.run(load_pc + 4, CODE + len(code))
    assert rig.seen == [(DEVICE + 0x30, 4, False, 0)]  # the device saw the access once
    assert replayed == [(DEVICE + 0x30, 4, False, 0)] and recorded == []
    assert rig.uc.reg_read(UC_ARM64_REG_X2) == 0xABCD
    rig.vm.physmem.close()


def test_unaligned_ranges_are_refused_and_unmapping_ends_the_mapping(rig: Rig) -> None:
    with pytest.raises(Sel4VmmError, match=r"\[0xa000800, 0xa001800\) is not whole 4 KiB pages"):
        install_mmio_trampoline(rig.uc, DEVICE + 0x800, 0x1000, rig.vm.memory.handle_fault)
    mmio = install_mmio_trampoline(rig.uc, DEVICE, 0x2000, rig.vm.memory.handle_fault)
    with pytest.raises(Sel4VmmError, match="unicorn refused to map MMIO"):
        install_mmio_trampoline(rig.uc, DEVICE, 0x1000, rig.vm.memory.handle_fault)
    rig.uc.mem_unmap(DEVICE, 0x2000)
    with pytest.raises(UcError):
        rig.run(mmio, [*mov64(1, DEVICE), LOAD[4]])
    assert rig.seen == []


def test_forcing_pure_python_refuses_the_trampoline(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PURE_PYTHON_VARIABLE, "1")
    with pytest.raises(Sel4VmmError, match="the unicorn MMIO trampoline is unavailable: pure"):
        install_mmio_trampoline(rig.uc, DEVICE, 0x1000, rig.vm.memory.handle_fault)
