"""Attaching virtio-mmio devices to a KVM run: windows, GSIs, refusals, Linux's command line.

The irqchip and attachment tests need no /dev/kvm (the irqchip is given a recording
stand-in for ``KvmVm.set_irq_line``); the command-line test loads a real bzImage into a
KVM session without running it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sel4vmm.backends.kvm.irqchip import IOAPIC_PINS, VIRTIO_GSIS, KvmIrqchip
from sel4vmm.backends.kvm.linux import load_linux
from sel4vmm.backends.kvm.session import KvmSession
from sel4vmm.backends.kvm.uart8250 import COM1_IRQ
from sel4vmm.backends.kvm.virtio import (
    VIRTIO_MMIO_BASE,
    VIRTIO_MMIO_STRIDE,
    VirtioRequest,
    attach_virtio,
)
from sel4vmm.devices.virtio.mmio import WINDOW_SIZE
from sel4vmm.errors import Sel4VmmError
from sel4vmm.sel4.arch import X86_64
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform
from sel4vmm.vm import PoolRequest, VirtualMachine

from .conftest import make_vm


class RecordedLines:
    """Stands in for KvmVm: every KVM_IRQ_LINE the irqchip would issue."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def set_irq_line(self, irq: int, level: bool) -> None:
        self.calls.append((irq, level))


@pytest.fixture
def vm() -> Iterator[VirtualMachine]:
    machine = make_vm("attach")
    yield machine
    machine.physmem.close()


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(4096))
    return path


def test_irqchip_lines_are_levels_with_one_owner_each() -> None:
    recorded = RecordedLines()
    chip = KvmIrqchip(recorded)
    line = chip.line(5, "virtio-block")
    line.raise_line()
    line.raise_line()  # IrqLine only calls the controller on a change
    line.lower_line()
    line.raise_line()
    assert recorded.calls == [(5, True), (5, False), (5, True)]
    assert chip.raised[5] == 2 and chip.is_raised(5)
    with pytest.raises(Sel4VmmError, match="GSI 5 for other is already virtio-block's"):
        chip.line(5, "other")
    chip.release(5)
    assert recorded.calls[-1] == (5, False) and chip.owner(5) is None
    chip.line(5, "other")


@pytest.mark.parametrize(
    ("gsi", "message"),
    [
        (0, "GSI 0 for x is already the in-kernel PIT's"),
        (2, "GSI 2 for x is already the PIC cascade's"),
        (IOAPIC_PINS, "GSI 24 is not an input of KVM's IOAPIC"),
        (-1, "GSI -1 is not an input of KVM's IOAPIC"),
    ],
)
def test_irqchip_refuses_reserved_and_missing_gsis(gsi: int, message: str) -> None:
    with pytest.raises(Sel4VmmError, match=message):
        KvmIrqchip(RecordedLines()).line(gsi, "x")


def test_virtio_gsis_avoid_the_pit_cascade_and_com1() -> None:
    assert not {0, 2, COM1_IRQ} & set(VIRTIO_GSIS)
    assert all(gsi < 16 for gsi in VIRTIO_GSIS)  # also reach the PICs (no-ACPI guests)


def test_devices_are_reservations_of_the_vm_at_the_documented_windows(
    vm: VirtualMachine, disk: Path
) -> None:
    chip = KvmIrqchip(RecordedLines())
    attached = attach_virtio(vm, chip, VirtioRequest(disk=disk, console=True), lambda _d: None)
    try:
        assert [(s.kind, s.base, s.gsi) for s in attached.slots] == [
            ("console", 0xD000_0000, 5),
            ("block", 0xD000_1000, 6),
        ]
        for slot in attached.slots:
            reservation = vm.memory.find(slot.base)
            assert (
                reservation is not None
                and reservation.label == f"virtio-{slot.kind}@{slot.base:#x}"
            )
            assert chip.owner(slot.gsi) == reservation.label
        assert attached.kernel_parameters() == (
            "virtio_mmio.device=0x200@0xd0000000:5 virtio_mmio.device=0x200@0xd0001000:6"
        )
    finally:
        attached.detach()
    assert vm.memory.find(VIRTIO_MMIO_BASE) is None and chip.owner(5) is None


def test_a_window_over_ram_is_refused_and_nothing_stays_attached(disk: Path) -> None:
    physmem = PhysicalMemory([MemoryRange(0, 8 << 30, name="ram")])
    try:
        big = VirtualMachine.create(
            "big", Sel4Platform(physmem, X86_64), pools=[PoolRequest(32, 2)]
        )
        big.ram.register_at(VIRTIO_MMIO_BASE + VIRTIO_MMIO_STRIDE, 2 << 20)
        chip = KvmIrqchip(RecordedLines())
        open_before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(Sel4VmmError) as caught:
            attach_virtio(big, chip, VirtioRequest(disk=disk, console=True), lambda _d: None)
        error = caught.value
        assert error.message.startswith(
            f"big: the virtio block window [{VIRTIO_MMIO_BASE + VIRTIO_MMIO_STRIDE:#x}, "
            f"{VIRTIO_MMIO_BASE + VIRTIO_MMIO_STRIDE + WINDOW_SIZE:#x}) is not free: "
        )
        assert error.fix and "less RAM" in error.fix
        # The console attached first is gone again, its GSI free, the disk image closed.
        assert big.memory.find(VIRTIO_MMIO_BASE) is None
        assert chip.owner(VIRTIO_GSIS[0]) is None and chip.owner(VIRTIO_GSIS[1]) is None
        assert len(os.listdir("/proc/self/fd")) == open_before
    finally:
        physmem.close()


def test_a_missing_disk_image_is_a_located_error(vm: VirtualMachine, tmp_path: Path) -> None:
    missing = tmp_path / "none.img"
    with pytest.raises(Sel4VmmError) as caught:
        attach_virtio(vm, KvmIrqchip(RecordedLines()), VirtioRequest(disk=missing), print)
    assert caught.value.location is not None and caught.value.location.path == str(missing)
    assert "cannot open the disk image" in caught.value.message
    assert vm.memory.find(VIRTIO_MMIO_BASE) is None


def test_linux_finds_the_devices_on_its_command_line(
    kvm_available: None, bzimage: bytes, disk: Path
) -> None:
    physmem = PhysicalMemory([MemoryRange(0, 1 << 30, name="ram")])
    vm = VirtualMachine.create("linux", Sel4Platform(physmem, X86_64), pools=[PoolRequest(28, 2)])
    vm.ram.register_at(0, 128 << 20, page_bits=21)
    try:
        with KvmSession(vm) as session:
            session.attach_virtio(VirtioRequest(disk=disk))
            boot = load_linux(session, bzimage, "console=ttyS0")
            expected = "console=ttyS0 virtio_mmio.device=0x200@0xd0000000:5"
            assert boot.cmdline == expected
            assert vm.ram.read(boot.cmdline_addr, len(expected) + 1) == expected.encode() + b"\0"
    finally:
        physmem.close()
