"""virtio-console: output through the transmitq, input through the receiveq."""

from __future__ import annotations

from sel4vmm.devices.virtio import console as virtio_console
from sel4vmm.devices.virtio import mmio
from sel4vmm.devices.virtio.console import VirtioConsole
from tests.devices.virtio.driver import SPI, GuestDriver, attach, make_vm


def started() -> tuple[GuestDriver, VirtioConsole, list[bytes], mmio.VirtioMmioTransport]:
    vm, ram = make_vm()
    output: list[bytes] = []
    device = VirtioConsole(output.append)
    transport, _gic = attach(vm, device)
    driver = GuestDriver(vm, ram)
    driver.start(queues=2)
    return driver, device, output, transport


def test_output_reaches_the_sink_in_order() -> None:
    driver, _device, output, transport = started()
    driver.add(virtio_console.TRANSMITQ, [b"Hello, ", b"hvc0\n"], [])
    driver.add(virtio_console.TRANSMITQ, [b"second\n"], [], indirect=True)
    assert b"".join(output) == b"Hello, hvc0\nsecond\n"
    assert [length for _head, length in driver.used(virtio_console.TRANSMITQ)] == [0, 0]
    assert transport.errors == []


def test_input_waits_for_a_receive_buffer() -> None:
    driver, device, _output, transport = started()
    device.feed_input(b"ls -l\n")
    assert device.has_input
    head = driver.add(virtio_console.RECEIVEQ, [], [4])
    assert driver.used(virtio_console.RECEIVEQ) == [(head, 4)]
    # The first buffer got the first four bytes; the rest waits for the next buffer.
    assert device.has_input
    second = driver.add(virtio_console.RECEIVEQ, [], [64])
    assert driver.used(virtio_console.RECEIVEQ) == [(second, 2)]
    assert not device.has_input
    assert transport.errors == []


def test_input_with_buffers_ready_is_delivered_at_once_with_an_interrupt() -> None:
    vm, ram = make_vm()
    device = VirtioConsole(lambda _data: None)
    _transport, gic = attach(vm, device)
    driver = GuestDriver(vm, ram)
    driver.start(queues=2)
    driver.add(virtio_console.RECEIVEQ, [], [16])
    assert not gic.is_raised(SPI)
    device.feed_input(b"y\n")
    ((_head, length),) = driver.used(virtio_console.RECEIVEQ)
    assert length == 2
    assert driver.vm.ram.read(driver.last_writable[0], 2) == b"y\n"
    assert driver.ack_interrupt() & mmio.INTERRUPT_USED_BUFFER


def test_emergency_write() -> None:
    driver, _device, output, _transport = started()
    driver.write(mmio.CONFIG_OFFSET + virtio_console.EMERG_WR_OFFSET, ord("!"))
    assert output == [b"!"]


def test_pending_input_is_bounded() -> None:
    device = VirtioConsole(lambda _data: None)
    device.feed_input(bytes(virtio_console.MAX_PENDING_INPUT + 10))
    assert device.dropped_input == 10


def test_resize_is_a_configuration_change() -> None:
    vm, ram = make_vm()
    device = VirtioConsole(lambda _data: None)
    _transport, gic = attach(vm, device)
    driver = GuestDriver(vm, ram)
    driver.start(queues=2)
    generation = driver.read(mmio.CONFIG_GENERATION)
    device.resize(132, 43)
    assert gic.is_raised(SPI)
    assert driver.ack_interrupt() == mmio.INTERRUPT_CONFIG_CHANGE
    assert driver.read(mmio.CONFIG_GENERATION) == generation + 1
    assert (driver.config(0, 2), driver.config(2, 2)) == (132, 43)
