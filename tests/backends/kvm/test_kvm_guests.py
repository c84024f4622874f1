"""Small long-mode guests on KVM exercising the guest-memory API end to end."""

from __future__ import annotations

from typing import Any

from sel4vmm.backends.kvm.run import StopReason
from sel4vmm.backends.kvm.x86_boot import EntryState
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.memory.address_space import frame_iterator
from sel4vmm.sel4.objects import ObjectKind, ObjectRun
from sel4vmm.sel4.physmem import PhysicalMemory

from .conftest import LAYOUT, ONE_TO_ONE, STACK_TOP, Script, ScriptGuest


def test_guest_reads_and_writes_ram_and_exits_through_the_exit_port(
    script_guest: ScriptGuest,
) -> None:
    script_guest.vm.ram.write(0x5_0000, (0x1122_3344_5566_7788).to_bytes(8, "little"))
    script = Script()
    first = script.read(0x5_0000)
    script.write(0x5_1000, 0xDEAD_BEEF, width=4)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.EXITED, outcome.diagnostic
    assert outcome.exit_code == 2  # operations executed
    assert script_guest.result(first) == 0x1122_3344_5566_7788
    assert script_guest.vm.ram.read(0x5_1000, 4) == (0xDEAD_BEEF).to_bytes(4, "little")


class Recorder:
    """A fault callback that records accesses and answers reads from an address pattern."""

    def __init__(self, result: FaultResult = FaultResult.HANDLED) -> None:
        self.faults: list[tuple[int, int, bool, int]] = []
        self.result = result

    def __call__(self, vm: Any, fault: MemoryFault, cookie: Any) -> FaultResult:
        self.faults.append((fault.address, fault.width, fault.is_write, fault.value))
        if not fault.is_write and self.result is FaultResult.HANDLED:
            fault.reply(0xA5A5_0000_0000_0000 | fault.address)
        return self.result


MMIO = 0xFE00_0000


def test_accesses_to_an_emulated_reservation_reach_its_callback(
    script_guest: ScriptGuest,
) -> None:
    device = Recorder()
    script_guest.vm.memory.reserve_at(MMIO, 0x1000, device, label="device")
    script = Script()
    script.write(MMIO + 0x10, 0x1234_5678, width=4)
    wide = script.read(MMIO + 0x18, width=8)
    narrow = script.read(MMIO + 0x21, width=1)
    script.write(MMIO + 0x22, 0xBEEF, width=2)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.EXITED, outcome.diagnostic
    assert device.faults == [
        (MMIO + 0x10, 4, True, 0x1234_5678),
        (MMIO + 0x18, 8, False, 0),
        (MMIO + 0x21, 1, False, 0),
        (MMIO + 0x22, 2, True, 0xBEEF),
    ]
    assert script_guest.result(wide) == 0xA5A5_0000_0000_0000 | (MMIO + 0x18)
    assert script_guest.result(narrow) == (MMIO + 0x21) & 0xFF


def test_ignored_reads_return_zero_and_ignored_writes_vanish(script_guest: ScriptGuest) -> None:
    device = Recorder(FaultResult.IGNORE)
    script_guest.vm.memory.reserve_at(MMIO, 0x1000, device)
    script = Script()
    script.write(MMIO, 7, width=4)
    read = script.read(MMIO + 8, width=4)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.EXITED, outcome.diagnostic
    assert script_guest.result(read) == 0
    assert len(device.faults) == 2


def test_a_callback_error_stops_the_vm_with_a_diagnostic(script_guest: ScriptGuest) -> None:
    script_guest.vm.memory.reserve_at(MMIO, 0x1000, Recorder(FaultResult.ERROR), label="broken")
    script = Script()
    script.write(MMIO + 4, 1, width=4)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.FAULT
    assert outcome.fault is not None and outcome.fault.address == MMIO + 4
    assert f"{MMIO + 4:#x}" in outcome.diagnostic and "rip=" in outcome.diagnostic


def test_touching_memory_the_guest_was_not_given_stops_it(script_guest: ScriptGuest) -> None:
    script = Script()
    script.read(0x4000_0000, width=8)
    script.out(0xF4, 99, width=4)  # never reached
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.FAULT
    assert outcome.exit_code is None
    assert "0x40000000" in outcome.diagnostic
    assert "no reservation claims this address" in outcome.diagnostic


def test_the_unhandled_fault_handler_gets_unclaimed_accesses(script_guest: ScriptGuest) -> None:
    fallback = Recorder()
    script_guest.vm.set_unhandled_fault_handler(fallback)
    script = Script()
    read = script.read(0x4000_0000, width=4)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.EXITED, outcome.diagnostic
    assert fallback.faults == [(0x4000_0000, 4, False, 0)]
    assert script_guest.result(read) == 0x4000_0000


def frames(guest: ScriptGuest, count: int) -> list[ObjectRun]:
    return guest.vm.allocator.retype(ObjectKind.FRAME, 12, count)


WINDOW = 0xD000_0000


def test_a_deferred_map_is_made_on_the_first_fault_and_the_write_lands(
    script_guest: ScriptGuest,
) -> None:
    memory = script_guest.vm.memory
    reservation = memory.reserve_at(WINDOW, 0x2000, label="deferred")
    memory.map(reservation, frame_iterator(frames(script_guest, 2), WINDOW), defer=True)
    slots = script_guest.session.slots
    assert slots is not None and slots.slot_at(WINDOW) is None
    script = Script()
    script.write(WINDOW + 0x1008, 0x0102_0304_0506_0708)
    again = script.read(WINDOW + 0x1008)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.EXITED, outcome.diagnostic
    assert script_guest.result(again) == 0x0102_0304_0506_0708
    ((paddr, _),) = memory.translate(WINDOW + 0x1008, 8)
    assert bytes(script_guest.vm.physmem.view(paddr, 8)) == bytes.fromhex("0807060504030201")
    slot = slots.slot_at(WINDOW)
    assert slot is not None and (slot.guest_addr, slot.size) == (WINDOW, 0x2000)


def test_a_deferred_map_answers_the_first_read_from_the_new_frames(
    script_guest: ScriptGuest,
) -> None:
    memory = script_guest.vm.memory
    runs = frames(script_guest, 1)
    script_guest.vm.physmem.view(runs[0].paddr + 0x40, 4)[:] = b"\x78\x56\x34\x12"
    reservation = memory.reserve_at(WINDOW, 0x1000)
    memory.map(reservation, frame_iterator(runs, WINDOW), defer=True)
    script = Script()
    first = script.read(WINDOW + 0x40, width=4)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.EXITED, outcome.diagnostic
    assert script_guest.result(first) == 0x1234_5678


def test_freeing_a_mapped_reservation_removes_its_slot(script_guest: ScriptGuest) -> None:
    memory = script_guest.vm.memory
    reservation = memory.reserve_at(WINDOW, 0x1000)
    memory.map(reservation, frame_iterator(frames(script_guest, 1), WINDOW))
    script = Script()
    script.write(WINDOW, 5)
    assert script_guest.run(script).reason is StopReason.EXITED
    memory.free(reservation)
    slots = script_guest.session.slots
    assert slots is not None and slots.slot_at(WINDOW) is None
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.FAULT
    assert outcome.fault is not None and outcome.fault.address == WINDOW


class DmaEngine:
    """A device that, told a buffer address, writes into it by *physical* address.

    Without an IOMMU a device only knows physical addresses; the guest hands it guest
    addresses.  That only works when guest RAM is 1:1 (IPA == PA), which is the point of
    ``one_to_one`` RAM in CAmkES VM configurations.
    """

    def __init__(self, physmem: PhysicalMemory, payload: bytes) -> None:
        self.physmem = physmem
        self.payload = payload
        self.address = 0

    def __call__(self, vm: Any, fault: MemoryFault, cookie: Any) -> FaultResult:
        if fault.is_write and fault.address == MMIO:
            self.address = fault.value
        elif fault.is_write and fault.address == MMIO + 8:
            self.physmem.view(self.address, len(self.payload))[:] = self.payload
        elif not fault.is_write:
            fault.reply(0)
        return FaultResult.HANDLED


def test_one_to_one_ram_lets_a_device_dma_into_guest_buffers(script_guest: ScriptGuest) -> None:
    vm = script_guest.vm
    buffer = ONE_TO_ONE + 0x1_2340
    assert vm.memory.translate(buffer, 16) == [(buffer, 16)]
    vm.memory.reserve_at(MMIO, 0x1000, DmaEngine(vm.physmem, b"seL4 DMA payload"))
    script = Script()
    script.write(MMIO, buffer)
    script.write(MMIO + 8, 1, width=4)
    low = script.read(buffer)
    high = script.read(buffer + 8)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.EXITED, outcome.diagnostic
    data = script_guest.result(low).to_bytes(8, "little") + script_guest.result(high).to_bytes(
        8, "little"
    )
    assert data == b"seL4 DMA payload"


def test_uart_output_is_collected(script_guest: ScriptGuest) -> None:
    script = Script()
    script.uart_puts("hello from a KVM guest\n")
    lsr = script.port_in(0x3FD)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.EXITED, outcome.diagnostic
    assert script_guest.session.uart.text() == "hello from a KVM guest\n"
    assert script_guest.result(lsr) & 0x60 == 0x60


def test_unclaimed_ports_read_as_all_ones(script_guest: ScriptGuest) -> None:
    script = Script()
    value = script.port_in(0x2F8, width=2)
    assert script_guest.run(script).reason is StopReason.EXITED
    assert script_guest.result(value) == 0xFFFF
    assert script_guest.session.ports.unclaimed[0x2F8] == 1


def test_dirty_log_reports_the_pages_the_guest_wrote(script_guest: ScriptGuest) -> None:
    log = script_guest.session.dirty_pages()
    log.start()
    script_guest.vm.ram.write(0x6_0000, b"vmm writes are not guest writes")
    script = Script()
    for page in (0x5_0000, 0x5_1000, 0x5_3000):
        script.write(page + 0x10, page)
    assert script_guest.run(script).reason is StopReason.EXITED
    dirty = set(log.collect())
    assert {0x5_0000, 0x5_1000, 0x5_3000} <= dirty
    assert 0x5_2000 not in dirty and 0x6_0000 not in dirty
    script = Script()
    script.write(0x5_2000, 1)
    assert script_guest.run(script).reason is StopReason.EXITED
    dirty = set(log.collect())
    assert 0x5_2000 in dirty and 0x5_0000 not in dirty
    log.stop()
    assert log.collect() == []


def test_a_triple_fault_stops_the_vm_with_the_registers(script_guest: ScriptGuest) -> None:
    # Jump above the 4 GiB identity map: a page fault with no IDT is a triple fault.
    script_guest.session.enter(LAYOUT, EntryState(rip=0x2_0000_0000, rsp=STACK_TOP))
    outcome = script_guest.session.run(timeout=30)
    assert outcome.reason is StopReason.SHUTDOWN, outcome.diagnostic
    assert "triple-faulted" in outcome.diagnostic
    assert "rip=" in outcome.diagnostic


def test_a_guest_that_never_exits_is_stopped_by_the_timeout(script_guest: ScriptGuest) -> None:
    script = Script()
    script.read_loop(0x5_0000, 1 << 62)
    outcome = script_guest.run(script, timeout=0.3)
    assert outcome.reason is StopReason.STOPPED


def test_the_uart_interrupt_reaches_the_in_kernel_pic_on_irq_4(script_guest: ScriptGuest) -> None:
    # The 8259's IRR (read from port 0x20 after reset) latches IRQ lines even while masked.
    script = Script()
    before = script.port_in(0x20)
    script.out(0x3FC, 0x08)  # MCR: OUT2, which gates the UART's IRQ on PC boards
    script.out(0x3F9, 0x02)  # IER: transmitter-empty interrupt
    after = script.port_in(0x20)
    outcome = script_guest.run(script)
    assert outcome.reason is StopReason.EXITED, outcome.diagnostic
    assert script_guest.session.uart.irq_level
    assert (script_guest.result(before) & 0x10, script_guest.result(after) & 0x10) == (0, 0x10)
