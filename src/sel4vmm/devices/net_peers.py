"""Who a VM's virtio-net card talks to, and the card's MAC address.

``run --net`` names the peer: ``none`` (no card: the node reads device ID 0), ``loopback``
(every frame comes straight back, for testing one guest's driver) or ``switch`` (a port of
the :class:`~sel4vmm.devices.net_switch.VirtualSwitch` the VMM runs; every VM of a run is a
port of the same switch, libvmm's vswitch model; one VM alone has a switch to itself).
Nothing ever leaves the process: there is no host networking.

A card's MAC comes from its device-tree node's ``local-mac-address`` (the property Linux's
``of_get_mac_address`` and QEMU's boards use), else it is derived from the VM's name, so
the same system gets the same addresses every run and two VMs differ: the first octet is
``0x02`` (IEEE 802: locally administered, unicast), the other five are the first bytes of
the name's SHA-256.  Two cards with one MAC on a switch would make its learning table flip
between them, so plugging in the second is refused, naming both.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Literal

from sel4vmm.devices.net_switch import SwitchPort, VirtualSwitch, format_mac, is_group_address
from sel4vmm.devices.virtio.net import LoopbackPeer, VirtioNet
from sel4vmm.errors import Location, Sel4VmmError

#: ``run --net``: the peer of the guest's virtio-net card.
NetBackend = Literal["none", "loopback", "switch"]
NET_BACKENDS: tuple[NetBackend, ...] = ("none", "loopback", "switch")
#: IEEE 802: bit 1 of the first octet marks a locally administered address.
LOCALLY_ADMINISTERED = 0x02


def mac_for_vm(vm_name: str) -> bytes:
    """A stable, locally administered unicast MAC for the VM called ``vm_name``."""
    digest = hashlib.sha256(vm_name.encode()).digest()
    return bytes([LOCALLY_ADMINISTERED]) + digest[:5]


def mac_from_property(value: bytes, node: str, source: str) -> bytes:
    """A node's ``local-mac-address`` (six bytes, unicast), or a located error."""
    if len(value) != 6:
        raise Sel4VmmError(
            f"{node}: local-mac-address is {len(value)} bytes, not the 6 of a MAC address",
            location=Location(source),
            fix="write local-mac-address = [02 00 00 00 00 01]; (six bytes) or drop it",
        )
    if is_group_address(value):
        raise Sel4VmmError(
            f"{node}: local-mac-address {format_mac(value)} is a multicast address "
            "(the lowest bit of its first octet is set)",
            location=Location(source),
            fix="give the card a unicast address, e.g. one starting with 02",
        )
    return bytes(value)


@dataclass
class NetConnection:
    """A virtio-net card and what it is plugged into."""

    device: VirtioNet
    backend: NetBackend
    node: str
    port: SwitchPort | None = None
    loopback: LoopbackPeer | None = None

    def report(self) -> dict[str, object]:
        """The card as ``run`` reports it: address, peer and counters on both sides."""
        document: dict[str, object] = {
            "node": self.node,
            "mac": format_mac(self.device.mac),
            "backend": self.backend,
            "frames_sent": self.device.sent_frames,
            "frames_received": self.device.received_frames,
            "frames_dropped": self.device.dropped_frames,
        }
        if self.port is not None:
            stats = self.port.stats
            document["switch_port"] = {
                "name": self.port.name,
                **asdict(stats),
                "dropped": stats.dropped_runt
                + stats.dropped_oversize
                + stats.dropped_queue_full
                + stats.dropped_spoofed,
            }
        return document

    def disconnect(self) -> None:
        """Unplug the card (its VM stopped): the switch forgets its addresses."""
        if self.port is not None:
            self.port.detach()


def connect_card(
    mac: bytes,
    backend: NetBackend,
    *,
    node: str,
    port_name: str,
    switch: VirtualSwitch | None,
    source: str,
) -> NetConnection:
    """A card with ``mac`` plugged into ``backend`` (a port of ``switch`` called ``port_name``).

    A switch port is locked to the card's MAC, so a guest cannot send as another VM.
    """
    device = VirtioNet(mac)
    if backend == "loopback":
        loopback = LoopbackPeer()
        loopback.attach(device)
        return NetConnection(device, backend, node, loopback=loopback)
    if backend != "switch" or switch is None:
        raise ValueError(f"a {backend!r} card with switch={switch!r} is not connectable")
    for other in switch.ports.values():
        if other.device is not None and other.device.mac == device.mac:
            raise Sel4VmmError(
                f"{node}: MAC {format_mac(mac)} is already the address of switch port "
                f"{other.name!r}; two cards on one switch need distinct addresses",
                location=Location(source),
                fix="give each VM's virtio-net node its own local-mac-address, or drop the "
                "property so sel4vmm derives one from the VM's name",
            )
    if port_name in switch.ports and switch.ports[port_name].device is not None:
        raise Sel4VmmError(
            f"{node}: the switch already has a port {port_name!r} with a card",
            location=Location(source),
            fix="give every VM of the system its own name",
        )
    port = switch.port(port_name)
    port.attach(device, lock_source=True)
    return NetConnection(device, backend, node, port=port)
