"""The virtual switch between VMs that share one board and the same guest RAM base.

Every VM here is a real :class:`VirtualMachine` on one :class:`Sel4Platform`, with RAM at
the same guest address; each has a virtio-net device on a switch port, driven only as a
guest would (register faults through ``vm.memory.handle_fault``, rings in its own RAM).
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

import pytest

from sel4vmm.devices import net_switch
from sel4vmm.devices.irq import LineLevels
from sel4vmm.devices.net_switch import SwitchPort, VirtualSwitch
from sel4vmm.devices.virtio import mmio, net
from sel4vmm.devices.virtio.mmio import VirtioMmioTransport
from sel4vmm.devices.virtio.net import VirtioNet
from sel4vmm.devices.virtio.virtqueue import VIRTQ_DESC_F_WRITE
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.devices.virtio.driver import RAM_BASE, RAM_SIZE, SPI, GuestDriver, attach
from tests.helpers import make_platform

HEADER = bytes(net.NET_HEADER.size)
ETHERTYPE_ARP = b"\x08\x06"
ETHERTYPE_EXPERIMENTAL = b"\x88\xb5"
#: The top 256 KiB of each VM's RAM holds a pattern no frame is ever written into.
SENTINEL_SIZE = 256 << 10
SENTINEL_BASE = RAM_BASE + RAM_SIZE - SENTINEL_SIZE
HEADER_AND_FRAME = net.NET_HEADER.size + net.MAX_FRAME


@dataclass
class Guest:
    vm: VirtualMachine
    device: VirtioNet
    transport: VirtioMmioTransport
    gic: LineLevels
    driver: GuestDriver
    port: SwitchPort
    mac: bytes
    sentinel: bytes

    def post_receive(self, count: int = 1, size: int = HEADER_AND_FRAME) -> list[int]:
        """Post ``count`` receive buffers; returns their guest addresses."""
        addresses = []
        for _ in range(count):
            self.driver.add(net.RECEIVEQ, [], [size])
            addresses.append(self.driver.last_writable[0])
        return addresses

    def ack_used_buffer(self) -> bool:
        """Acknowledge the device's interrupt; True if it said "used buffer"."""
        return bool(self.driver.ack_interrupt() & mmio.INTERRUPT_USED_BUFFER)

    def transmit(self, frame: bytes) -> None:
        head = self.driver.add(net.TRANSMITQ, [HEADER + frame], [])
        assert self.driver.used(net.TRANSMITQ) == [(head, 0)]

    def received(self, addresses: list[int]) -> list[bytes]:
        """The frames that arrived in the buffers at ``addresses``, in order."""
        used = self.driver.used(net.RECEIVEQ)
        return [
            self.vm.ram.read(address + net.NET_HEADER.size, length - net.NET_HEADER.size)
            for address, (_head, length) in zip(addresses, used, strict=False)
        ]


def make_guests(count: int, switch: VirtualSwitch) -> list[Guest]:
    """``count`` VMs on one board, all with 4 MiB of RAM at RAM_BASE, each on a port."""
    platform = make_platform(ram_size=256 << 20)
    guests = []
    for i in range(count):
        name = f"vm{i}"
        vm = VirtualMachine.create(name, platform, pools=[PoolRequest(24, 2)])
        vm.ram.register_at(RAM_BASE, RAM_SIZE)
        sentinel = (f"{name} private RAM ".encode() * 64)[:64]
        vm.ram.write(SENTINEL_BASE, sentinel * (SENTINEL_SIZE // len(sentinel)))
        mac = bytes.fromhex(f"5254000000{i + 1:02x}")
        device = VirtioNet(mac)
        port = switch.port(name)
        port.attach(device)
        transport, gic = attach(vm, device)
        driver = GuestDriver(vm, RAM_BASE)
        driver.ram_end = SENTINEL_BASE  # the driver's buffers never reach the sentinels
        driver.start(queues=2)
        guests.append(Guest(vm, device, transport, gic, driver, port, mac, sentinel))
    return guests


def arp_request(source: bytes) -> bytes:
    """An ARP who-has as Linux sends it: 42 bytes, unpadded (``sizeof(struct arphdr)`` + 20)."""
    body = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + source + bytes([10, 0, 0, 1])
    body += bytes(6) + bytes([10, 0, 0, 2])
    return net_switch.BROADCAST + source + ETHERTYPE_ARP + body


def unicast(destination: bytes, source: bytes, payload: bytes) -> bytes:
    return destination + source + ETHERTYPE_EXPERIMENTAL + payload


def assert_sentinels_intact(guests: list[Guest]) -> None:
    """Each VM's private bytes are where it put them and nowhere in any other VM's RAM."""
    images = {guest.vm.name: guest.vm.ram.read(RAM_BASE, RAM_SIZE) for guest in guests}
    for guest in guests:
        tail = images[guest.vm.name][RAM_SIZE - SENTINEL_SIZE :]
        assert tail == guest.sentinel * (SENTINEL_SIZE // len(guest.sentinel))
        for other in guests:
            if other is not guest:
                assert guest.sentinel[:16] not in images[other.vm.name]
    pieces = [
        {(paddr, size) for _, paddr, size in guest.vm.ram.physical_pieces(RAM_BASE, RAM_SIZE)}
        for guest in guests
    ]
    for i, mine in enumerate(pieces):
        for theirs in pieces[i + 1 :]:
            for p0, n0 in mine:
                for p1, n1 in theirs:
                    assert p0 + n0 <= p1 or p1 + n1 <= p0


def test_linux_ethernet_limits() -> None:
    # Linux include/uapi/linux/if_ether.h (v6.1): "#define ETH_ALEN 6", "#define ETH_HLEN 14",
    # "#define ETH_ZLEN 60", "#define ETH_FRAME_LEN 1514".
    assert (net_switch.ETH_ALEN, net_switch.ETH_HLEN) == (6, 14)
    assert (net_switch.ETH_ZLEN, net_switch.ETH_FRAME_LEN) == (60, 1514)
    assert net_switch.ETH_FRAME_LEN == net.MAX_FRAME


def test_broadcast_reaches_every_other_port_padded_and_unicast_reply_only_the_asker() -> None:
    switch = VirtualSwitch()
    a, b, c = make_guests(3, switch)
    buffers = {guest.vm.name: guest.post_receive(2) for guest in (a, b, c)}

    request = arp_request(a.mac)
    a.transmit(request)
    padded = request + bytes(net_switch.ETH_ZLEN - len(request))
    assert b.received(buffers["vm1"]) == [padded]
    assert c.received(buffers["vm2"]) == [padded]
    assert a.received(buffers["vm0"]) == []  # never back out of its own port
    assert switch.lookup(a.mac) is a.port

    reply = unicast(a.mac, b.mac, b"is-at " + b.mac + bytes(60))
    b.transmit(reply)
    assert a.received(buffers["vm0"]) == [reply]
    assert c.received(buffers["vm2"][1:]) == []  # learned: C does not see the reply
    assert switch.learned() == {"52:54:00:00:00:01": "vm0", "52:54:00:00:00:02": "vm1"}

    assert (a.port.stats.rx_frames, a.port.stats.flooded_frames) == (1, 1)
    assert (b.port.stats.rx_frames, b.port.stats.flooded_frames) == (1, 0)
    assert (c.port.stats.tx_frames, c.port.stats.tx_bytes) == (1, net_switch.ETH_ZLEN)
    assert a.port.stats.tx_bytes == len(reply)
    for guest in (a, b, c):
        assert guest.transport.errors == []
    assert_sentinels_intact([a, b, c])


def test_unknown_unicast_and_multicast_flood_but_multicast_sources_are_not_learned() -> None:
    switch = VirtualSwitch()
    a, b, c = make_guests(3, switch)
    for guest in (b, c):
        guest.post_receive(2)
    a.transmit(unicast(bytes.fromhex("5254000000ee"), a.mac, bytes(50)))
    multicast = bytes.fromhex("01005e000001")
    a.transmit(unicast(multicast, multicast, bytes(50)))
    assert [len(b.driver.used(net.RECEIVEQ)), len(c.driver.used(net.RECEIVEQ))] == [2, 2]
    assert switch.lookup(multicast) is None
    assert a.port.stats.flooded_frames == 2


def test_a_unicast_frame_for_its_own_port_is_filtered() -> None:
    switch = VirtualSwitch()
    a, b = make_guests(2, switch)
    a.post_receive()
    b.post_receive()
    a.transmit(unicast(net_switch.BROADCAST, a.mac, bytes(50)))
    assert len(b.driver.used(net.RECEIVEQ)) == 1
    a.transmit(unicast(a.mac, a.mac, bytes(50)))
    assert a.driver.used(net.RECEIVEQ) == [] and b.driver.used(net.RECEIVEQ) == []
    assert a.port.stats.tx_frames == 0


def test_a_mac_that_moves_is_learned_on_its_new_port() -> None:
    switch = VirtualSwitch()
    a, b, c = make_guests(3, switch)
    shared = bytes.fromhex("5254000000aa")
    a.transmit(unicast(net_switch.BROADCAST, shared, bytes(50)))
    assert switch.lookup(shared) is a.port
    b.transmit(unicast(net_switch.BROADCAST, shared, bytes(50)))
    assert switch.lookup(shared) is b.port
    c.post_receive()
    c.transmit(unicast(shared, c.mac, bytes(50)))
    assert b.port.stats.tx_frames == 2 and a.port.stats.tx_frames == 1


def test_the_mac_table_is_bounded_and_forgets_the_least_recently_seen() -> None:
    switch = VirtualSwitch(mac_table_size=4)
    a, _b = make_guests(2, switch)
    sources = [bytes.fromhex(f"5254000100{i:02x}") for i in range(10)]
    for source in sources:
        a.transmit(unicast(net_switch.BROADCAST, source, bytes(50)))
    assert len(switch.learned()) == 4
    assert switch.lookup(sources[0]) is None
    assert all(switch.lookup(source) is a.port for source in sources[-4:])


def test_a_guest_that_does_not_refill_loses_frames_past_its_queue_depth() -> None:
    switch = VirtualSwitch(queue_depth=4)
    a, b = make_guests(2, switch)
    frames = [unicast(b.mac, a.mac, bytes([i]) * 100) for i in range(10)]
    for frame in frames:
        a.transmit(frame)
    assert b.port.stats.dropped_queue_full == 6
    assert b.port.stats.tx_frames == 4
    buffers = b.post_receive(10)
    assert b.received(buffers) == frames[:4]  # the first four waited, in order
    assert b.device.dropped_frames == 6


def test_hostile_frames_are_dropped_and_counted_never_raised() -> None:
    switch = VirtualSwitch()
    a, b = make_guests(2, switch)
    b.post_receive(4)
    a.transmit(b"")  # a header with no frame at all
    a.transmit(b.mac + a.mac)  # 12 bytes: no EtherType
    a.transmit(unicast(b.mac, a.mac, bytes(net.MTU + 1)))  # one byte too long
    assert a.port.stats.dropped_runt == 2
    # An oversize chain is dropped by the device before it reaches the switch.
    assert a.device.dropped_frames == 1
    # Through a port directly (any other NetPeer user), the switch drops it itself.
    a.port.send(unicast(b.mac, a.mac, bytes(net.MTU + 1)))
    assert a.port.stats.dropped_oversize == 1
    assert b.driver.used(net.RECEIVEQ) == []
    assert a.port.stats.rx_frames == 0
    assert a.transport.errors == [] and b.transport.errors == []


def test_a_descriptor_outside_ram_is_a_device_error_of_that_vm_only() -> None:
    switch = VirtualSwitch()
    a, b = make_guests(2, switch)
    # B posts a receive buffer that points past its RAM; A's transmit must still complete.
    queue = b.driver.queues[net.RECEIVEQ]
    head = queue.free.pop(0)
    outside = RAM_BASE + RAM_SIZE + 0x1000
    b.driver.write_descriptor(queue.desc, head, outside, 2048, VIRTQ_DESC_F_WRITE)
    b.driver.make_available(queue, head)
    b.driver.write(mmio.QUEUE_NOTIFY, net.RECEIVEQ)
    a.transmit(unicast(b.mac, a.mac, bytes(100)))
    assert a.transport.errors == []
    assert b.transport.errors and b.transport.needs_reset()
    # A's transmit descriptor outside A's RAM: A's device error, nothing switched.
    tx = a.driver.queues[net.TRANSMITQ]
    head = tx.free.pop(0)
    a.driver.write_descriptor(tx.desc, head, outside, 200, 0)
    a.driver.make_available(tx, head)
    fault = MemoryFault(a.driver.base + mmio.QUEUE_NOTIFY, 4, True, net.TRANSMITQ)
    assert a.vm.memory.handle_fault(fault) is FaultResult.HANDLED
    assert a.transport.errors and a.transport.needs_reset()
    assert a.port.stats.rx_frames == 1
    assert_sentinels_intact([a, b])


@pytest.mark.parametrize("receiver_batch", [1, 16])
def test_one_mib_in_1500_byte_frames_arrives_intact(receiver_batch: int) -> None:
    switch = VirtualSwitch()
    a, b = make_guests(2, switch)
    # B announces itself first, so the switch learns it and A's frames go to B alone.
    b.transmit(arp_request(b.mac))
    data = os.urandom(1 << 20)
    chunks = [data[i : i + net.MTU] for i in range(0, len(data), net.MTU)]
    got = hashlib.sha256()
    received = 0
    for start in range(0, len(chunks), receiver_batch):
        batch = chunks[start : start + receiver_batch]
        buffers = b.post_receive(len(batch))
        for chunk in batch:
            a.transmit(unicast(b.mac, a.mac, chunk))
        for frame in b.received(buffers):
            assert frame[:12] == b.mac + a.mac
            got.update(frame[14:])
            received += len(frame) - 14
        # The driver's bump allocator is per test; recycle its RAM between batches.
        for guest in (a, b):
            guest.driver.cursor = guest.driver.queues[net.TRANSMITQ].used + 6 + 8 * 16
    assert received == len(data)
    assert got.hexdigest() == hashlib.sha256(data).hexdigest()
    assert b.port.stats.tx_frames == len(chunks)
    assert b.port.stats.dropped_queue_full == 0 and b.device.dropped_frames == 0
    assert a.port.stats.flooded_frames == 0
    assert_sentinels_intact([a, b])


def test_a_source_locked_port_drops_frames_claiming_another_vms_mac() -> None:
    switch = VirtualSwitch()
    a, b, c = make_guests(3, switch)
    c.port.attach(c.device, lock_source=True)
    a.transmit(unicast(net_switch.BROADCAST, a.mac, bytes(50)))
    c.transmit(unicast(net_switch.BROADCAST, a.mac, bytes(50)))  # C pretends to be A
    assert c.port.stats.dropped_spoofed == 1 and c.port.stats.rx_frames == 0
    assert switch.lookup(a.mac) is a.port  # A's traffic is not steered to C
    c.transmit(unicast(net_switch.BROADCAST, c.mac, bytes(50)))
    assert switch.lookup(c.mac) is c.port
    assert b.port.stats.tx_frames == 2


def test_a_frame_from_another_vm_raises_the_receivers_interrupt_only() -> None:
    switch = VirtualSwitch()
    a, b = make_guests(2, switch)
    b.post_receive()
    a.post_receive()
    a.transmit(unicast(net_switch.BROADCAST, a.mac, bytes(50)))
    assert b.gic.is_raised(SPI)
    assert b.ack_used_buffer()
    assert not b.gic.is_raised(SPI)
    assert a.driver.used(net.RECEIVEQ) == []  # A's receive buffer stays posted


def test_a_detached_port_drops_frames_and_its_addresses_flood_again() -> None:
    switch = VirtualSwitch()
    a, b, c = make_guests(3, switch)
    b.transmit(unicast(net_switch.BROADCAST, b.mac, bytes(50)))
    assert switch.lookup(b.mac) is b.port
    b.port.detach()
    assert switch.lookup(b.mac) is None and b.device.peer is None
    c.post_receive()
    a.transmit(unicast(b.mac, a.mac, bytes(50)))  # B's address is unknown again: flooded
    assert len(c.driver.used(net.RECEIVEQ)) == 1
    assert b.port.stats.dropped_queue_full == 1
    b.transmit(unicast(a.mac, b.mac, bytes(50)))  # B's card has no peer: nothing switched
    assert switch.lookup(b.mac) is None
