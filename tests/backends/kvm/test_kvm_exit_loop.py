"""The exit loop's two implementations (C extension and pure Python) give the same answers.

Every test here runs on both loops (the ``exit_loop`` fixture behind ``script_guest``): the
C loop hands MMIO faults to the same ``handle_fault`` and returns to Python for every
answer but HANDLED, so diagnostics, exit counts and device-visible accesses must match.
"""

from __future__ import annotations

from typing import Any

from sel4vmm.backends.kvm.run import StopReason
from sel4vmm.memory import FaultResult, MemoryFault

from .conftest import Script, ScriptGuest

MMIO = 0xFE00_0000


def test_the_outcome_names_the_exit_loop_that_ran(
    script_guest: ScriptGuest, exit_loop: str
) -> None:
    outcome = script_guest.run(Script())
    assert outcome.reason is StopReason.EXITED, outcome.diagnostic
    assert outcome.exit_loop.startswith(exit_loop)


def test_every_mmio_exit_is_counted_and_reaches_the_device_once(
    script_guest: ScriptGuest,
) -> None:
    seen: list[int] = []

    def device(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        seen.append(fault.address)
        fault.reply(len(seen))
        return FaultResult.HANDLED

    script_guest.vm.memory.reserve_at(MMIO, 0x1000, device, label="counter")
    script = Script()
    script.read_loop(MMIO + 0x40, 500)
    last = script.read(MMIO + 0x44, width=4)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.EXITED, outcome.diagnostic
    assert seen == [MMIO + 0x40] * 500 + [MMIO + 0x44]
    assert script_guest.result(last) == 501
    # 501 MMIO exits and the exit-port write; no other exits for this guest.
    assert outcome.exits == 502


def test_a_callback_that_raises_stops_the_vm_naming_the_exception(
    script_guest: ScriptGuest,
) -> None:
    def broken(_vm: Any, _fault: MemoryFault, _cookie: Any) -> FaultResult:
        raise RuntimeError("register file on fire")

    reservation = script_guest.vm.memory.reserve_at(MMIO, 0x1000, broken, label="broken")
    script = Script()
    script.read(MMIO + 8, width=4)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.FAULT
    # The memory core's own wording (handle_fault), whichever loop ran.
    assert outcome.diagnostic.startswith(
        f"read of 4 bytes from {MMIO + 8:#x}: {reservation} raised RuntimeError: "
        "register file on fire\n"
    )


def test_a_read_handled_without_a_value_stops_the_vm(script_guest: ScriptGuest) -> None:
    script_guest.vm.memory.reserve_at(
        MMIO, 0x1000, lambda _vm, _fault, _cookie: FaultResult.HANDLED, label="mute"
    )
    script = Script()
    script.read(MMIO, width=2)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.FAULT
    assert "handled a read without giving a value" in outcome.diagnostic


def test_a_device_that_frees_its_reservation_is_not_called_again(
    script_guest: ScriptGuest,
) -> None:
    """After the free, the page belongs to nobody: the next access must stop the VM."""
    calls: list[int] = []
    memory = script_guest.vm.memory

    def once(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        calls.append(fault.address)
        found = memory.find(fault.address)
        assert found is not None
        memory.free(found)
        fault.reply(1)
        return FaultResult.HANDLED

    memory.reserve_at(MMIO, 0x1000, once, label="one-shot")
    script = Script()
    script.read(MMIO, width=4)
    script.read(MMIO + 4, width=4)
    outcome = script_guest.run(script)
    assert calls == [MMIO]
    assert outcome.reason is StopReason.FAULT
    assert "no reservation claims this address" in outcome.diagnostic
    assert outcome.fault is not None and outcome.fault.address == MMIO + 4


def test_a_reservation_replaced_during_the_run_gets_the_next_access(
    script_guest: ScriptGuest,
) -> None:
    memory = script_guest.vm.memory
    answers: list[str] = []

    def second(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        answers.append("second")
        fault.reply(2)
        return FaultResult.HANDLED

    def first(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        answers.append("first")
        found = memory.find(fault.address)
        assert found is not None
        memory.free(found)
        memory.reserve_at(MMIO, 0x1000, second, label="second")
        fault.reply(1)
        return FaultResult.HANDLED

    memory.reserve_at(MMIO, 0x1000, first, label="first")
    script = Script()
    a = script.read(MMIO, width=4)
    b = script.read(MMIO, width=4)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.EXITED, outcome.diagnostic
    assert answers == ["first", "second"]
    assert (script_guest.result(a), script_guest.result(b)) == (1, 2)


def test_faults_a_device_keeps_are_its_own_and_stay_as_they_were(
    script_guest: ScriptGuest,
) -> None:
    """The C loop reuses a fault object only while nothing else holds a reference."""
    kept: list[MemoryFault] = []

    def keeper(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        kept.append(fault)
        if not fault.is_write:
            fault.reply(fault.address & 0xFF)
        return FaultResult.HANDLED

    script_guest.vm.memory.reserve_at(MMIO, 0x1000, keeper, label="keeper")
    script = Script()
    script.read(MMIO + 0x10, width=4)
    script.write(MMIO + 0x20, 0xBEEF, width=2)
    script.read(MMIO + 0x30, width=8)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.EXITED, outcome.diagnostic
    assert len({id(fault) for fault in kept}) == 3
    assert [(f.address, f.width, f.is_write, f.value, f.read_value) for f in kept] == [
        (MMIO + 0x10, 4, False, 0, 0x10),
        (MMIO + 0x20, 2, True, 0xBEEF, None),
        (MMIO + 0x30, 8, False, 0, 0x30),
    ]
