"""A virtual Ethernet switch between the virtio-net devices of several VMs.

The model is libvmm's vswitch (and LionsOS's network virtualisers): every VM's network card
is one port; the switch learns which port a source MAC address lives behind, delivers a
unicast frame to the port its destination was learned on, and floods broadcast, multicast
and not-yet-learned unicast frames to every other port.  A frame never goes back out of the
port it came in on (no hairpin), so a VM never sees its own traffic.

Nothing leaves the process: a port is a :class:`~sel4vmm.devices.virtio.net.NetPeer` for one
:class:`~sel4vmm.devices.virtio.net.VirtioNet`, and delivery is a push into the receiving
device's bounded queue, which the device moves into guest RAM as its driver posts receive
buffers (``net.py``'s peer contract).  A guest that never refills its receive queue loses
frames past that bound, counted on its port, and slows no one else down.

Everything a guest sends is checked before it is switched: a frame shorter than an Ethernet
header is dropped as a runt, a frame longer than ``ETH_FRAME_LEN`` is dropped as oversize,
and a frame shorter than ``ETH_ZLEN`` is padded with zeros to that minimum, as a NIC pads on
the wire (Linux's virtio-net hands over 42-byte ARP frames unpadded; QEMU's ``net/`` pads
such frames for its peers the same way).  A port can be locked to its device's MAC, so
its guest cannot impersonate another VM (a learning switch otherwise believes any source
address, as a real one does).  The MAC table is bounded: a guest that sprays
source addresses evicts the least recently seen entries, never grows the VMM's memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from sel4vmm.devices.virtio.net import VirtioNet

#: Linux ``include/uapi/linux/if_ether.h``: address length, header length, minimum frame
#: without FCS, maximum frame without FCS.
ETH_ALEN = 6
ETH_HLEN = 14
ETH_ZLEN = 60
ETH_FRAME_LEN = 1514
#: How many source addresses the switch remembers (the least recently seen go first).
MAC_TABLE_SIZE = 1024
#: Frames a port holds for a guest that has no receive buffer posted (the device's queue).
DEFAULT_QUEUE_DEPTH = 64

BROADCAST = b"\xff" * ETH_ALEN


def is_group_address(mac: bytes) -> bool:
    """Broadcast and multicast: the I/G bit, the lowest bit of the first octet (IEEE 802)."""
    return bool(mac[0] & 1)


def format_mac(mac: bytes) -> str:
    return ":".join(f"{octet:02x}" for octet in mac)


@dataclass
class PortStatistics:
    """What one port saw; ``rx`` is from its guest into the switch, ``tx`` out to it."""

    rx_frames: int = 0
    rx_bytes: int = 0
    tx_frames: int = 0
    tx_bytes: int = 0
    #: Frames from this port sent to every other port (group or unknown destination).
    flooded_frames: int = 0
    #: Frames from this guest shorter than an Ethernet header.
    dropped_runt: int = 0
    #: Frames from this guest longer than ETH_FRAME_LEN.
    dropped_oversize: int = 0
    #: Frames for this guest lost because its receive queue was full (or no device).
    dropped_queue_full: int = 0
    #: Frames from a source-locked port whose source MAC is not its device's.
    dropped_spoofed: int = 0


class SwitchPort:
    """One VM's connection to the switch: the NetPeer its virtio-net device transmits to."""

    def __init__(self, switch: VirtualSwitch, name: str, queue_depth: int) -> None:
        self.switch = switch
        self.name = name
        self.queue_depth = queue_depth
        self.device: VirtioNet | None = None
        #: The only source MAC this port accepts, if it is locked to its device's address.
        self.locked_source: bytes | None = None
        self.stats = PortStatistics()

    def attach(self, device: VirtioNet, *, lock_source: bool = False) -> None:
        """Plug ``device`` into this port: its frames come here, the port's go to it.

        The port's queue depth becomes the device's receive-queue bound, so one number says
        how many frames wait for a guest that has no buffer posted.  ``lock_source`` makes
        the port drop (and count) every frame whose source is not the device's MAC, so a
        guest cannot claim another VM's address and have the switch steer its traffic away.
        """
        if self.device is not None and self.device is not device:
            raise ValueError(f"switch port {self.name!r} already has a device")
        device.max_pending = self.queue_depth
        device.peer = self
        self.device = device
        self.locked_source = device.mac if lock_source else None

    def detach(self) -> None:
        """Unplug the card (its VM stopped): frames for it are dropped and counted, and the
        switch forgets the addresses learned here, so traffic for them floods again."""
        if self.device is not None and self.device.peer is self:
            self.device.peer = None
        self.device = None
        self.switch.forget(self)

    def send(self, frame: bytes) -> None:
        """A frame transmitted by this port's guest."""
        self.switch.forward(self, frame)

    def deliver(self, frame: bytes) -> None:
        """A frame the switch sends out of this port to its guest."""
        if self.device is None or not self.device.receive(frame):
            self.stats.dropped_queue_full += 1
            return
        self.stats.tx_frames += 1
        self.stats.tx_bytes += len(frame)


class VirtualSwitch:
    """A learning Ethernet switch: ports by name, a bounded MAC table, flooding, no hairpin."""

    def __init__(
        self, *, mac_table_size: int = MAC_TABLE_SIZE, queue_depth: int = DEFAULT_QUEUE_DEPTH
    ) -> None:
        if mac_table_size < 1 or queue_depth < 1:
            raise ValueError("a switch needs room for at least one MAC and one queued frame")
        self.mac_table_size = mac_table_size
        self.queue_depth = queue_depth
        self.ports: dict[str, SwitchPort] = {}
        #: Source MAC -> the port it was last seen on, least recently seen first.
        self._table: OrderedDict[bytes, SwitchPort] = OrderedDict()

    def port(self, name: str, *, queue_depth: int | None = None) -> SwitchPort:
        """The port called ``name``, made on first use (one per VM's network card)."""
        existing = self.ports.get(name)
        if existing is not None:
            return existing
        depth = self.queue_depth if queue_depth is None else queue_depth
        if depth < 1:
            raise ValueError(f"switch port {name!r}: a queue holds at least one frame")
        port = SwitchPort(self, name, depth)
        self.ports[name] = port
        return port

    def lookup(self, mac: bytes) -> SwitchPort | None:
        """The port ``mac`` was learned on, if the switch remembers it."""
        return self._table.get(bytes(mac))

    def learned(self) -> dict[str, str]:
        """The MAC table as text (address -> port name), for diagnostics."""
        return {format_mac(mac): port.name for mac, port in self._table.items()}

    def forget(self, port: SwitchPort) -> None:
        """Drop every address learned on ``port``."""
        for mac in [mac for mac, where in self._table.items() if where is port]:
            del self._table[mac]

    def forward(self, source: SwitchPort, frame: bytes) -> None:
        """Check, learn from and switch one frame that ``source``'s guest transmitted."""
        stats = source.stats
        if len(frame) < ETH_HLEN:
            stats.dropped_runt += 1
            return
        if len(frame) > ETH_FRAME_LEN:
            stats.dropped_oversize += 1
            return
        if len(frame) < ETH_ZLEN:
            frame = bytes(frame) + bytes(ETH_ZLEN - len(frame))
        source_mac = bytes(frame[ETH_ALEN : 2 * ETH_ALEN])
        if source.locked_source is not None and source_mac != source.locked_source:
            stats.dropped_spoofed += 1
            return
        stats.rx_frames += 1
        stats.rx_bytes += len(frame)
        destination = bytes(frame[:ETH_ALEN])
        self._learn(source_mac, source)
        target = None if is_group_address(destination) else self._table.get(destination)
        if target is None:
            stats.flooded_frames += 1
            for port in self.ports.values():
                if port is not source:
                    port.deliver(frame)
        elif target is not source:
            target.deliver(frame)
        # A unicast frame for an address behind its own port is filtered (no hairpin).

    def _learn(self, mac: bytes, port: SwitchPort) -> None:
        # Group addresses are never a source a frame can be switched back to (802.1D).
        if is_group_address(mac):
            return
        self._table[mac] = port
        self._table.move_to_end(mac)
        while len(self._table) > self.mac_table_size:
            self._table.popitem(last=False)
