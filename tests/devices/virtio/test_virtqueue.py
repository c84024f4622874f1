"""Split virtqueues: chains, indirect tables, event index, and every driver error."""

from __future__ import annotations

import struct

import pytest

from sel4vmm.devices.irq import LineLevels
from sel4vmm.devices.virtio import console as virtio_console
from sel4vmm.devices.virtio import mmio
from sel4vmm.devices.virtio.console import VirtioConsole
from sel4vmm.devices.virtio.device import VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC
from sel4vmm.devices.virtio.mmio import VirtioMmioTransport
from sel4vmm.devices.virtio.virtqueue import (
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
)
from tests.devices.virtio.driver import RAM_BASE, RAM_SIZE, SPI, GuestDriver, attach, make_vm

TX = virtio_console.TRANSMITQ


def started(
    features: int | None = None,
) -> tuple[GuestDriver, VirtioMmioTransport, list[bytes], LineLevels]:
    vm, ram = make_vm()
    output: list[bytes] = []
    transport, gic = attach(vm, VirtioConsole(output.append))
    driver = GuestDriver(vm, ram)
    driver.start(queues=2, features=features)
    return driver, transport, output, gic


def hostile(driver: GuestDriver, descriptors: list[tuple[int, int, int, int]]) -> None:
    """Write descriptors 0.. of the transmit queue as given and make 0 available."""
    queue = driver.queues[TX]
    for index, (addr, length, flags, following) in enumerate(descriptors):
        driver.write_descriptor(queue.desc, index, addr, length, flags, following)
    driver.make_available(queue, 0)
    driver.write(mmio.QUEUE_NOTIFY, TX)


def test_chain_of_direct_descriptors() -> None:
    driver, transport, output, _gic = started()
    driver.add(TX, [b"a", b"bc", b"def"], [])
    assert output == [b"a", b"bc", b"def"]
    assert transport.errors == []


def test_chained_descriptors_then_an_indirect_table() -> None:
    # 2.7.5.3.2: "The device MUST handle the case of zero or more normal chained
    # descriptors followed by a single descriptor with flags&VIRTQ_DESC_F_INDIRECT."
    driver, transport, output, _gic = started()
    table = driver.alloc(32)
    driver.write_descriptor(table, 0, driver.buffer(b"in"), 2, VIRTQ_DESC_F_NEXT, 1)
    driver.write_descriptor(table, 1, driver.buffer(b"direct"), 6, 0)
    hostile(
        driver,
        [
            (driver.buffer(b"chained-"), 8, VIRTQ_DESC_F_NEXT, 1),
            (table, 32, VIRTQ_DESC_F_INDIRECT, 0),
        ],
    )
    assert b"".join(output) == b"chained-indirect"
    assert transport.errors == []


def test_event_index_interrupts_only_when_used_event_is_crossed() -> None:
    driver, transport, _output, gic = started()
    queue = driver.queues[TX]
    used_event = queue.avail + 4 + 2 * queue.num
    driver.vm.ram.write(used_event, struct.pack("<H", 2))  # interrupt after the 3rd buffer
    for _ in range(2):
        driver.add(TX, [b"x"], [])
        assert not gic.is_raised(SPI)
    driver.add(TX, [b"x"], [])
    assert gic.is_raised(SPI)
    # The device publishes avail_event: how far it has consumed the available ring.
    avail_event = queue.used + 4 + 8 * queue.num
    assert struct.unpack("<H", driver.vm.ram.read(avail_event, 2))[0] == 3
    assert transport.errors == []


@pytest.mark.parametrize(
    ("descriptors", "message"),
    [
        ([(RAM_BASE, 1, VIRTQ_DESC_F_NEXT, 0)], "longer than its table (a loop)"),
        ([(RAM_BASE, 1, VIRTQ_DESC_F_NEXT, 1), (RAM_BASE, 1, VIRTQ_DESC_F_NEXT, 0)], "a loop"),
        ([(RAM_BASE, 1, VIRTQ_DESC_F_NEXT, 16)], "chains to 16, outside its table of 16"),
        ([(0x1000, 4, 0, 0)], "buffer of descriptor 0 [0x1000, 0x1004) is not guest RAM"),
        ([(RAM_BASE + RAM_SIZE - 4, 8, 0, 0)], "is not guest RAM"),
        ([(RAM_BASE, 0xFFFFFFFF, 0, 0)], "is not guest RAM"),
        ([(1 << 63, 16, 0, 0)], "is not guest RAM"),
        ([(RAM_BASE, 4, VIRTQ_DESC_F_WRITE, 0)], None),  # a write-only chain is fine
        (
            [(RAM_BASE, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1), (RAM_BASE, 4, 0, 0)],
            "device-readable descriptor 1 after a device-writable one",
        ),
        ([(RAM_BASE, 17, VIRTQ_DESC_F_INDIRECT, 0)], "indirect table length 17"),
        ([(RAM_BASE, 0, VIRTQ_DESC_F_INDIRECT, 0)], "indirect table length 0"),
        ([(RAM_BASE, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1)], "both INDIRECT and NEXT"),
        (
            [(RAM_BASE + RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0)],
            "indirect table [0x403ffff0, 0x40400010) is not guest RAM",
        ),
    ],
)
def test_hostile_chain_is_a_device_error(
    descriptors: list[tuple[int, int, int, int]], message: str | None
) -> None:
    driver, transport, _output, _gic = started()
    hostile(driver, descriptors)
    if message is None:
        assert transport.errors == []
        return
    assert message in transport.errors[-1]
    assert driver.read(mmio.STATUS) & mmio.DEVICE_NEEDS_RESET
    # A stopped device ignores further notifications until the driver resets it.
    count = len(transport.errors)
    driver.write(mmio.QUEUE_NOTIFY, TX)
    assert len(transport.errors) == count


def test_indirect_table_inside_an_indirect_table() -> None:
    driver, transport, _output, _gic = started()
    inner = driver.alloc(16)
    driver.write_descriptor(inner, 0, driver.buffer(b"deep"), 4, 0)
    outer = driver.alloc(16)
    driver.write_descriptor(outer, 0, inner, 16, VIRTQ_DESC_F_INDIRECT)
    hostile(driver, [(outer, 16, VIRTQ_DESC_F_INDIRECT, 0)])
    assert "indirect descriptor inside an indirect table" in transport.errors[-1]


def test_loop_inside_an_indirect_table() -> None:
    driver, transport, _output, _gic = started()
    table = driver.alloc(32)
    driver.write_descriptor(table, 0, RAM_BASE, 1, VIRTQ_DESC_F_NEXT, 1)
    driver.write_descriptor(table, 1, RAM_BASE, 1, VIRTQ_DESC_F_NEXT, 0)
    hostile(driver, [(table, 32, VIRTQ_DESC_F_INDIRECT, 0)])
    assert "a loop" in transport.errors[-1]


def test_indirect_without_the_feature_is_refused() -> None:
    driver, transport, _output, _gic = started(features=~VIRTIO_RING_F_INDIRECT_DESC)
    table = driver.alloc(16)
    driver.write_descriptor(table, 0, driver.buffer(b"x"), 1, 0)
    hostile(driver, [(table, 16, VIRTQ_DESC_F_INDIRECT, 0)])
    assert "without VIRTIO_RING_F_INDIRECT_DESC" in transport.errors[-1]


def test_head_outside_the_table() -> None:
    driver, transport, _output, _gic = started(features=~VIRTIO_RING_F_EVENT_IDX)
    driver.make_available(driver.queues[TX], 200)
    driver.write(mmio.QUEUE_NOTIFY, TX)
    assert "names descriptor 200, outside the table of 16" in transport.errors[-1]


def test_available_index_too_far_ahead() -> None:
    driver, transport, _output, _gic = started()
    driver.vm.ram.write(driver.queues[TX].avail + 2, struct.pack("<H", 17))
    driver.write(mmio.QUEUE_NOTIFY, TX)
    assert "moved 17 entries ahead of the device" in transport.errors[-1]


@pytest.mark.parametrize(
    ("register", "value", "message"),
    [
        (mmio.QUEUE_NUM, 3, "size 3 is not a power of 2"),
        (mmio.QUEUE_NUM, 0, "size 0 is not a power of 2"),
        (mmio.QUEUE_NUM, 1 << 16, "is not a power of 2 in [1, 256]"),
        (mmio.QUEUE_DRIVER_LOW, RAM_BASE + 1, "available ring at 0x40000001 is not 2-byte"),
        (mmio.QUEUE_DEVICE_LOW, RAM_BASE + 2, "used ring at 0x40000002 is not 4-byte"),
        (mmio.QUEUE_DESC_LOW, RAM_BASE + 8, "descriptor table at 0x40000008 is not 16-byte"),
        (mmio.QUEUE_DEVICE_HIGH, 1, "used ring [0x14000a000, 0x14000a086) is not guest RAM"),
    ],
)
def test_bad_queue_layout(register: int, value: int, message: str) -> None:
    vm, ram = make_vm()
    transport, _gic = attach(vm, VirtioConsole(lambda _data: None))
    driver = GuestDriver(vm, ram)
    driver.negotiate()
    driver.write(mmio.QUEUE_SEL, 0)
    driver.write(mmio.QUEUE_NUM, 16)
    for low in (mmio.QUEUE_DESC_LOW, mmio.QUEUE_DRIVER_LOW, mmio.QUEUE_DEVICE_LOW):
        driver.write(low, RAM_BASE + 0x1000 * (low >> 4))
    driver.write(register, value)
    driver.write(mmio.QUEUE_READY, 1)
    assert driver.read(mmio.QUEUE_READY) == 0
    assert message in transport.errors[-1]
