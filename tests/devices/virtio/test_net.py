"""virtio-net: MAC in config, the 12-byte header, a loopback round trip."""

from __future__ import annotations

import os

from sel4vmm.devices.virtio import net
from sel4vmm.devices.virtio.mmio import VirtioMmioTransport
from sel4vmm.devices.virtio.net import LoopbackPeer, VirtioNet
from tests.devices.virtio.driver import GuestDriver, attach, make_vm

MAC = bytes.fromhex("525400123456")


def started() -> tuple[GuestDriver, VirtioNet, VirtioMmioTransport]:
    vm, ram = make_vm()
    device = VirtioNet(MAC)
    LoopbackPeer().attach(device)
    transport, _gic = attach(vm, device)
    driver = GuestDriver(vm, ram)
    driver.start(queues=2)
    return driver, device, transport


def frame(payload: bytes) -> bytes:
    # Ethernet: destination, source, EtherType 0x88B5 (local experimental), payload.
    return MAC + MAC + b"\x88\xb5" + payload


def test_mac_and_features() -> None:
    driver, _device, _transport = started()
    assert driver.device_features() & net.VIRTIO_NET_F_MAC
    assert bytes(driver.config(i, 1) for i in range(6)) == MAC
    assert driver.config(6, 2) == net.VIRTIO_NET_S_LINK_UP


def test_loopback_round_trip() -> None:
    driver, device, transport = started()
    receive = [driver.add(net.RECEIVEQ, [], [net.NET_HEADER.size + net.MAX_FRAME])]
    buffers = list(driver.last_writable)
    sent = frame(os.urandom(200))
    header = bytes(net.NET_HEADER.size)
    tx_head = driver.add(net.TRANSMITQ, [header, sent], [])
    assert driver.used(net.TRANSMITQ) == [(tx_head, 0)]
    ((head, length),) = driver.used(net.RECEIVEQ)
    assert head == receive[0]
    assert length == net.NET_HEADER.size + len(sent)
    got = driver.vm.ram.read(buffers[0], length)
    # num_buffers (the last u16 of virtio_net_hdr) is 1 without mergeable buffers.
    assert got[: net.NET_HEADER.size] == bytes(10) + b"\x01\x00"
    assert got[net.NET_HEADER.size :] == sent
    assert (device.sent_frames, device.received_frames) == (1, 1)
    assert transport.errors == []


def test_frames_wait_for_receive_buffers_then_arrive_in_order() -> None:
    driver, device, _transport = started()
    frames = [frame(bytes([i]) * 60) for i in range(3)]
    for each in frames:
        driver.add(net.TRANSMITQ, [bytes(net.NET_HEADER.size) + each], [], indirect=True)
    assert driver.used(net.RECEIVEQ) == []
    got = []
    for _ in frames:
        driver.add(net.RECEIVEQ, [], [2048])
        address = driver.last_writable[0]
        ((_head, length),) = driver.used(net.RECEIVEQ)
        got.append(driver.vm.ram.read(address + net.NET_HEADER.size, length - 12))
    assert got == frames
    assert device.dropped_frames == 0


def test_too_small_receive_buffer_drops_the_frame() -> None:
    driver, device, _transport = started()
    driver.add(net.RECEIVEQ, [], [20])
    driver.add(net.TRANSMITQ, [bytes(12) + frame(bytes(100))], [])
    assert [length for _head, length in driver.used(net.RECEIVEQ)] == [0]
    assert device.dropped_frames == 1


def test_transmit_without_header_needs_reset() -> None:
    driver, _device, transport = started()
    driver.add(net.TRANSMITQ, [b"tiny"], [])
    assert "virtio_net_hdr" in transport.errors[-1]


def test_reset_drops_pending_frames() -> None:
    driver, device, _transport = started()
    device.receive(frame(b"x"))
    driver.write(0x070, 0)
    driver.start(queues=2)
    driver.add(net.RECEIVEQ, [], [2048], notify=True)
    assert driver.used(net.RECEIVEQ) == []
