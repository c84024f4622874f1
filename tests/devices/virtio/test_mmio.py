"""The virtio-mmio transport, driven through the VM's fault path as a guest driver would."""

from __future__ import annotations

import pytest

from sel4vmm.devices.virtio import mmio
from sel4vmm.devices.virtio.console import VirtioConsole
from sel4vmm.devices.virtio.device import VIRTIO_F_VERSION_1
from sel4vmm.memory import FaultResult, MemoryFault
from tests.devices.virtio.driver import MODERN, SPI, GuestDriver, attach, make_vm

# Register offsets and interrupt bits from Linux's include/uapi/linux/virtio_mmio.h (v6.1),
# the header the guest's driver is built from.
LINUX_VIRTIO_MMIO = {
    "VIRTIO_MMIO_MAGIC_VALUE": 0x000,
    "VIRTIO_MMIO_VERSION": 0x004,
    "VIRTIO_MMIO_DEVICE_ID": 0x008,
    "VIRTIO_MMIO_VENDOR_ID": 0x00C,
    "VIRTIO_MMIO_DEVICE_FEATURES": 0x010,
    "VIRTIO_MMIO_DEVICE_FEATURES_SEL": 0x014,
    "VIRTIO_MMIO_DRIVER_FEATURES": 0x020,
    "VIRTIO_MMIO_DRIVER_FEATURES_SEL": 0x024,
    "VIRTIO_MMIO_QUEUE_SEL": 0x030,
    "VIRTIO_MMIO_QUEUE_NUM_MAX": 0x034,
    "VIRTIO_MMIO_QUEUE_NUM": 0x038,
    "VIRTIO_MMIO_QUEUE_READY": 0x044,
    "VIRTIO_MMIO_QUEUE_NOTIFY": 0x050,
    "VIRTIO_MMIO_INTERRUPT_STATUS": 0x060,
    "VIRTIO_MMIO_INTERRUPT_ACK": 0x064,
    "VIRTIO_MMIO_STATUS": 0x070,
    "VIRTIO_MMIO_QUEUE_DESC_LOW": 0x080,
    "VIRTIO_MMIO_QUEUE_DESC_HIGH": 0x084,
    "VIRTIO_MMIO_QUEUE_AVAIL_LOW": 0x090,
    "VIRTIO_MMIO_QUEUE_AVAIL_HIGH": 0x094,
    "VIRTIO_MMIO_QUEUE_USED_LOW": 0x0A0,
    "VIRTIO_MMIO_QUEUE_USED_HIGH": 0x0A4,
    "VIRTIO_MMIO_SHM_SEL": 0x0AC,
    "VIRTIO_MMIO_SHM_LEN_LOW": 0x0B0,
    "VIRTIO_MMIO_SHM_LEN_HIGH": 0x0B4,
    "VIRTIO_MMIO_SHM_BASE_LOW": 0x0B8,
    "VIRTIO_MMIO_SHM_BASE_HIGH": 0x0BC,
    "VIRTIO_MMIO_CONFIG_GENERATION": 0x0FC,
    "VIRTIO_MMIO_CONFIG": 0x100,
    "VIRTIO_MMIO_INT_VRING": 1 << 0,
    "VIRTIO_MMIO_INT_CONFIG": 1 << 1,
}
OURS = {
    "VIRTIO_MMIO_MAGIC_VALUE": mmio.MAGIC,
    "VIRTIO_MMIO_VERSION": mmio.VERSION_REG,
    "VIRTIO_MMIO_DEVICE_ID": mmio.DEVICE_ID,
    "VIRTIO_MMIO_VENDOR_ID": mmio.VENDOR,
    "VIRTIO_MMIO_DEVICE_FEATURES": mmio.DEVICE_FEATURES,
    "VIRTIO_MMIO_DEVICE_FEATURES_SEL": mmio.DEVICE_FEATURES_SEL,
    "VIRTIO_MMIO_DRIVER_FEATURES": mmio.DRIVER_FEATURES,
    "VIRTIO_MMIO_DRIVER_FEATURES_SEL": mmio.DRIVER_FEATURES_SEL,
    "VIRTIO_MMIO_QUEUE_SEL": mmio.QUEUE_SEL,
    "VIRTIO_MMIO_QUEUE_NUM_MAX": mmio.QUEUE_NUM_MAX,
    "VIRTIO_MMIO_QUEUE_NUM": mmio.QUEUE_NUM,
    "VIRTIO_MMIO_QUEUE_READY": mmio.QUEUE_READY,
    "VIRTIO_MMIO_QUEUE_NOTIFY": mmio.QUEUE_NOTIFY,
    "VIRTIO_MMIO_INTERRUPT_STATUS": mmio.INTERRUPT_STATUS,
    "VIRTIO_MMIO_INTERRUPT_ACK": mmio.INTERRUPT_ACK,
    "VIRTIO_MMIO_STATUS": mmio.STATUS,
    "VIRTIO_MMIO_QUEUE_DESC_LOW": mmio.QUEUE_DESC_LOW,
    "VIRTIO_MMIO_QUEUE_DESC_HIGH": mmio.QUEUE_DESC_HIGH,
    "VIRTIO_MMIO_QUEUE_AVAIL_LOW": mmio.QUEUE_DRIVER_LOW,
    "VIRTIO_MMIO_QUEUE_AVAIL_HIGH": mmio.QUEUE_DRIVER_HIGH,
    "VIRTIO_MMIO_QUEUE_USED_LOW": mmio.QUEUE_DEVICE_LOW,
    "VIRTIO_MMIO_QUEUE_USED_HIGH": mmio.QUEUE_DEVICE_HIGH,
    "VIRTIO_MMIO_SHM_SEL": mmio.SHM_SEL,
    "VIRTIO_MMIO_SHM_LEN_LOW": mmio.SHM_LEN_LOW,
    "VIRTIO_MMIO_SHM_LEN_HIGH": mmio.SHM_LEN_HIGH,
    "VIRTIO_MMIO_SHM_BASE_LOW": mmio.SHM_BASE_LOW,
    "VIRTIO_MMIO_SHM_BASE_HIGH": mmio.SHM_BASE_HIGH,
    "VIRTIO_MMIO_CONFIG_GENERATION": mmio.CONFIG_GENERATION,
    "VIRTIO_MMIO_CONFIG": mmio.CONFIG_OFFSET,
    "VIRTIO_MMIO_INT_VRING": mmio.INTERRUPT_USED_BUFFER,
    "VIRTIO_MMIO_INT_CONFIG": mmio.INTERRUPT_CONFIG_CHANGE,
}


def test_register_layout_is_linuxs() -> None:
    assert OURS == LINUX_VIRTIO_MMIO


@pytest.fixture
def console() -> tuple[GuestDriver, mmio.VirtioMmioTransport, list[bytes]]:
    vm, ram = make_vm()
    output: list[bytes] = []
    transport, _gic = attach(vm, VirtioConsole(output.append))
    return GuestDriver(vm, ram), transport, output


def test_identification(console: tuple[GuestDriver, mmio.VirtioMmioTransport, list[bytes]]) -> None:
    driver, _transport, _output = console
    # virtio 1.2, 4.2.2: MagicValue "0x74726976 (a Little Endian equivalent of the “virt”
    # string)", Version "0x2"; 5.3.1: console is device ID 3.
    assert driver.read(mmio.MAGIC) == 0x74726976
    assert driver.read(mmio.MAGIC).to_bytes(4, "little") == b"virt"
    assert driver.read(mmio.VERSION_REG) == 0x2
    assert driver.read(mmio.DEVICE_ID) == 3
    assert driver.read(mmio.VENDOR) == int.from_bytes(b"sel4", "little")
    assert driver.read(mmio.SHM_LEN_LOW) == driver.read(mmio.SHM_LEN_HIGH) == 0xFFFFFFFF


def test_feature_selectors_and_version_1(
    console: tuple[GuestDriver, mmio.VirtioMmioTransport, list[bytes]],
) -> None:
    driver, _transport, _output = console
    features = driver.device_features()
    assert features & VIRTIO_F_VERSION_1
    assert features & MODERN == MODERN


def test_features_ok_refused_without_version_1(
    console: tuple[GuestDriver, mmio.VirtioMmioTransport, list[bytes]],
) -> None:
    driver, transport, _output = console
    driver.negotiate(wanted=~VIRTIO_F_VERSION_1)
    assert not driver.read(mmio.STATUS) & mmio.FEATURES_OK
    assert "VIRTIO_F_VERSION_1" in transport.errors[-1]


def test_features_ok_refused_for_unoffered_features(
    console: tuple[GuestDriver, mmio.VirtioMmioTransport, list[bytes]],
) -> None:
    driver, transport, _output = console
    driver.write(mmio.STATUS, mmio.ACKNOWLEDGE | mmio.DRIVER)
    driver.write(mmio.DRIVER_FEATURES_SEL, 1)
    driver.write(mmio.DRIVER_FEATURES, 1 | 1 << 20)  # VERSION_1 and bit 52
    driver.write(mmio.STATUS, mmio.ACKNOWLEDGE | mmio.DRIVER | mmio.FEATURES_OK)
    assert not driver.read(mmio.STATUS) & mmio.FEATURES_OK
    assert "never offered" in transport.errors[-1]


def test_status_handshake_and_reset(
    console: tuple[GuestDriver, mmio.VirtioMmioTransport, list[bytes]],
) -> None:
    driver, transport, _output = console
    driver.start(queues=2)
    assert driver.read(mmio.STATUS) == (
        mmio.ACKNOWLEDGE | mmio.DRIVER | mmio.FEATURES_OK | mmio.DRIVER_OK
    )
    driver.write(mmio.QUEUE_SEL, 1)
    assert driver.read(mmio.QUEUE_READY) == 1
    desc = driver.queues[1].desc
    assert driver.read(mmio.QUEUE_DESC_LOW) == desc & 0xFFFFFFFF
    driver.write(mmio.STATUS, 0)
    assert driver.read(mmio.STATUS) == 0
    assert driver.read(mmio.QUEUE_READY) == 0
    assert driver.read(mmio.QUEUE_DESC_LOW) == 0
    assert not transport.running


def test_queue_layout_cannot_change_while_ready(
    console: tuple[GuestDriver, mmio.VirtioMmioTransport, list[bytes]],
) -> None:
    driver, transport, _output = console
    driver.start(queues=2)
    driver.write(mmio.QUEUE_SEL, 0)
    driver.write(mmio.QUEUE_DESC_LOW, 0x1000)
    assert driver.read(mmio.QUEUE_DESC_LOW) == driver.queues[0].desc & 0xFFFFFFFF
    assert transport.errors == []


def test_used_buffer_interrupt_and_ack() -> None:
    vm, ram = make_vm()
    output: list[bytes] = []
    transport, gic = attach(vm, VirtioConsole(output.append))
    driver = GuestDriver(vm, ram)
    driver.start(queues=2, features=~0 & ~(1 << 29))  # no event index: plain interrupts
    driver.add(1, [b"hi"], [])
    assert gic.is_raised(SPI)
    assert driver.ack_interrupt() == mmio.INTERRUPT_USED_BUFFER
    assert not gic.is_raised(SPI)
    assert driver.read(mmio.INTERRUPT_STATUS) == 0
    assert transport.errors == []


def test_no_interrupt_flag_suppresses_the_interrupt() -> None:
    vm, ram = make_vm()
    _transport, gic = attach(vm, VirtioConsole(lambda _data: None))
    driver = GuestDriver(vm, ram)
    driver.start(queues=2, features=~0 & ~(1 << 29))
    vm.ram.write(driver.queues[1].avail, b"\x01\x00")  # VIRTQ_AVAIL_F_NO_INTERRUPT
    driver.add(1, [b"quiet"], [])
    assert driver.used(1) != []
    assert not gic.is_raised(SPI)


def test_bad_ring_address_needs_reset_and_interrupts(
    console: tuple[GuestDriver, mmio.VirtioMmioTransport, list[bytes]],
) -> None:
    driver, transport, _output = console
    driver.negotiate()
    driver.write(mmio.QUEUE_SEL, 0)
    driver.write(mmio.QUEUE_NUM, 16)
    driver.write(mmio.QUEUE_DESC_LOW, 0x1000)  # not guest RAM
    driver.write(mmio.QUEUE_READY, 1)
    assert driver.read(mmio.QUEUE_READY) == 0
    assert driver.read(mmio.STATUS) & mmio.DEVICE_NEEDS_RESET
    assert "descriptor table [0x1000, 0x1100) is not guest RAM" in transport.errors[-1]
    driver.write(mmio.STATUS, 0)
    assert driver.read(mmio.STATUS) == 0


def test_needs_reset_while_running_sends_config_change() -> None:
    vm, ram = make_vm()
    transport, gic = attach(vm, VirtioConsole(lambda _data: None))
    driver = GuestDriver(vm, ram)
    driver.start(queues=2)
    generation = driver.read(mmio.CONFIG_GENERATION)
    driver.write(mmio.QUEUE_NOTIFY, 5)  # no queue 5
    assert driver.read(mmio.STATUS) & mmio.DEVICE_NEEDS_RESET
    assert driver.read(mmio.INTERRUPT_STATUS) & mmio.INTERRUPT_CONFIG_CHANGE
    assert driver.read(mmio.CONFIG_GENERATION) != generation
    assert gic.is_raised(SPI)
    assert not transport.running


def test_narrow_register_access_is_a_device_error(
    console: tuple[GuestDriver, mmio.VirtioMmioTransport, list[bytes]],
) -> None:
    driver, transport, _output = console
    assert driver.read(mmio.MAGIC, 2) == 0
    assert "registers are 32-bit" in transport.errors[-1]


def test_config_space_reads_at_any_width(
    console: tuple[GuestDriver, mmio.VirtioMmioTransport, list[bytes]],
) -> None:
    driver, _transport, _output = console
    # struct virtio_console_config: cols, rows, max_nr_ports, emerg_wr.
    assert driver.config(0, 2) == 80
    assert driver.config(2, 2) == 25
    assert driver.config(4, 4) == 1
    assert driver.config(0, 4) == 80 | 25 << 16
    assert driver.config(0x40, 4) == 0  # past the structure


def test_window_is_a_reservation_in_the_address_space() -> None:
    vm, _ram = make_vm()
    transport, _gic = attach(vm, VirtioConsole(lambda _data: None))
    assert vm.memory.find(transport.base) is transport.reservation
    # An access past the register window is claimed by nobody.
    fault = MemoryFault(transport.base + mmio.WINDOW_SIZE, 4, False)
    assert vm.memory.handle_fault(fault) is FaultResult.UNHANDLED


def test_detach_gives_the_window_back() -> None:
    vm, _ram = make_vm()
    transport, _gic = attach(vm, VirtioConsole(lambda _data: None))
    transport.detach()
    assert vm.memory.find(transport.base) is None
    assert vm.memory.handle_fault(MemoryFault(transport.base, 4, False)) is FaultResult.UNHANDLED


def test_driver_ok_without_features_ok_does_not_start_the_device() -> None:
    vm, ram = make_vm()
    output: list[bytes] = []
    transport, _gic = attach(vm, VirtioConsole(output.append))
    driver = GuestDriver(vm, ram)
    driver.negotiate(wanted=~VIRTIO_F_VERSION_1)  # refused: FEATURES_OK stays clear
    driver.write(mmio.STATUS, mmio.ACKNOWLEDGE | mmio.DRIVER | mmio.DRIVER_OK)
    assert not transport.running
