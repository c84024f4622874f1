"""virtio-mmio devices on KVM: guests/x86_64/virtio.c drives real rings through MMIO exits.

Each test runs the guest on the C exit loop and on the pure-Python one (``exit_loop``).  The
guest takes the used-buffer interrupt for real (IOAPIC pin level-triggered to a vector,
``sti; hlt`` until the handler acknowledged InterruptStatus and sent the EOI), so a test
that passes has seen: the device's line raised through KVM_IRQ_LINE, delivered by KVM's
IOAPIC and local APIC, and lowered by the guest's InterruptACK.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from sel4vmm.backends.kvm.irqchip import VIRTIO_GSIS
from sel4vmm.backends.kvm.virtio import VIRTIO_MMIO_BASE, VIRTIO_MMIO_STRIDE, VirtioRequest
from sel4vmm.devices.virtio.block import BLOCK_DEVICE_ID, SECTOR_SIZE, VIRTIO_BLK_S_IOERR
from sel4vmm.devices.virtio.console import CONSOLE_DEVICE_ID
from sel4vmm.devices.virtio.mmio import (
    DEVICE_NEEDS_RESET,
    INTERRUPT_CONFIG_CHANGE,
    INTERRUPT_USED_BUFFER,
    MAGIC_VALUE,
    VERSION,
)

from .virtio_guest import BLOCK, CONSOLE, STEP_DEVICE_ERROR, STEP_OK, GuestInputs, run_virtio_guest

pytestmark = pytest.mark.usefixtures("kvm_available", "exit_loop")

#: "0x74726976 (a Little Endian equivalent of the “virt” string)" (virtio 1.2, 4.2.2).
assert MAGIC_VALUE == 0x74726976


@pytest.fixture
def virtio_elf(guest_binaries: Path) -> Path:
    return guest_binaries / "virtio.elf"


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    """Four sectors of distinct, non-zero bytes."""
    path = tmp_path / "disk.img"
    path.write_bytes(os.urandom(4 * SECTOR_SIZE))
    return path


def _sector(path: Path, index: int) -> bytes:
    return path.read_bytes()[index * SECTOR_SIZE : (index + 1) * SECTOR_SIZE]


def test_console_string_reaches_the_host_through_the_transmit_queue(virtio_elf: Path) -> None:
    message = b"hello from the x86 guest's virtqueue\n"
    run = run_virtio_guest(virtio_elf, VirtioRequest(console=True), GuestInputs(message=message))
    assert run.outcome.ok, run.outcome.diagnostic
    assert run.outcome.exit_code == STEP_OK
    assert run.console_output == message
    out = run.outputs
    assert (out.magic[CONSOLE], out.version[CONSOLE]) == (MAGIC_VALUE, VERSION)
    assert out.device_id[CONSOLE] == CONSOLE_DEVICE_ID
    assert out.used_len[0] == 0  # the transmit queue writes nothing into the buffer
    # One used-buffer interrupt, taken by the guest and acknowledged: the line is down.
    (slot,) = run.slots
    assert (slot.base, slot.gsi) == (VIRTIO_MMIO_BASE, VIRTIO_GSIS[0])
    assert out.interrupts[CONSOLE] == 1
    assert out.interrupt_status[CONSOLE] == INTERRUPT_USED_BUFFER
    assert run.raised == {slot.gsi: 1} and run.still_raised == {slot.gsi: False}
    assert run.errors == []


def test_block_reads_sector_0_and_writes_sector_1_of_the_host_file(
    virtio_elf: Path, disk: Path
) -> None:
    before = disk.read_bytes()
    written = bytes(range(256)) * 2
    run = run_virtio_guest(virtio_elf, VirtioRequest(disk=disk), GuestInputs(write_data=written))
    assert run.outcome.ok, run.outcome.diagnostic
    assert run.outcome.exit_code == STEP_OK, run.errors
    out = run.outputs
    assert (out.magic[BLOCK], out.version[BLOCK]) == (MAGIC_VALUE, VERSION)
    assert out.device_id[BLOCK] == BLOCK_DEVICE_ID
    assert out.read_data == before[:SECTOR_SIZE]
    assert out.request_status == (0, 0)
    # used.len: the data plus the status byte for IN; only the status byte for OUT.
    assert out.used_len[1:3] == (SECTOR_SIZE + 1, 1)
    after = disk.read_bytes()
    assert _sector(disk, 1) == written
    assert after[:SECTOR_SIZE] == before[:SECTOR_SIZE]
    assert after[2 * SECTOR_SIZE :] == before[2 * SECTOR_SIZE :]
    (slot,) = run.slots
    assert out.interrupts[BLOCK] == 2 and run.raised == {slot.gsi: 2}
    assert run.still_raised == {slot.gsi: False}


def test_console_and_block_get_their_own_windows_and_gsis(virtio_elf: Path, disk: Path) -> None:
    run = run_virtio_guest(
        virtio_elf,
        VirtioRequest(disk=disk, console=True),
        GuestInputs(message=b"both\n", write_data=b"\x5a" * SECTOR_SIZE),
    )
    assert run.outcome.ok and run.outcome.exit_code == STEP_OK, run.outcome.diagnostic
    assert [(s.kind, s.base, s.gsi) for s in run.slots] == [
        ("console", VIRTIO_MMIO_BASE, VIRTIO_GSIS[0]),
        ("block", VIRTIO_MMIO_BASE + VIRTIO_MMIO_STRIDE, VIRTIO_GSIS[1]),
    ]
    assert run.console_output == b"both\n"
    assert run.outputs.interrupts == (1, 2)
    assert _sector(disk, 1) == b"\x5a" * SECTOR_SIZE


def test_a_read_only_disk_fails_the_write_and_keeps_the_file(virtio_elf: Path, disk: Path) -> None:
    digest = hashlib.sha256(disk.read_bytes()).digest()
    run = run_virtio_guest(
        virtio_elf,
        VirtioRequest(disk=disk, read_only=True),
        GuestInputs(write_data=b"\xff" * SECTOR_SIZE),
    )
    # The guest stops at the OUT request's status (STEP_REQUEST_STATUS = 8).
    assert run.outcome.exit_code == 8, run.outcome.diagnostic
    assert run.outputs.request_status == (0, VIRTIO_BLK_S_IOERR)
    assert run.outputs.read_data == disk.read_bytes()[:SECTOR_SIZE]
    assert hashlib.sha256(disk.read_bytes()).digest() == digest


def test_a_descriptor_past_guest_ram_is_a_reported_device_error(
    virtio_elf: Path, disk: Path
) -> None:
    digest = hashlib.sha256(disk.read_bytes()).digest()
    past_ram = 4 << 20  # make_vm's RAM at guest 0 is 4 MiB: the first byte after it
    run = run_virtio_guest(virtio_elf, VirtioRequest(disk=disk), GuestInputs(hostile_addr=past_ram))
    # The VMM did not stop or crash: the guest ran on and saw the device refuse the chain.
    assert run.outcome.ok, run.outcome.diagnostic
    assert run.outcome.exit_code == STEP_DEVICE_ERROR
    assert run.errors == [
        f"virtio-block@{VIRTIO_MMIO_BASE:#x}: queue 0: buffer of descriptor 1 "
        f"[{past_ram:#x}, {past_ram + SECTOR_SIZE:#x}) is not guest RAM"
    ]
    out = run.outputs
    assert out.status_after[BLOCK] & DEVICE_NEEDS_RESET
    assert out.interrupt_status[BLOCK] == INTERRUPT_CONFIG_CHANGE
    assert hashlib.sha256(disk.read_bytes()).digest() == digest
