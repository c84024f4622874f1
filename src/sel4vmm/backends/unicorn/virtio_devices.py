"""virtio-mmio devices for a Linux guest, from its device tree's ``virtio,mmio`` nodes.

QEMU and libvmm describe each virtio-mmio transport as a node (``compatible =
"virtio,mmio"``, a ``reg`` window and one ``interrupts`` specifier); the guest's
``virtio_mmio`` driver probes every one.  This module reads those nodes from the DTB the
guest boots with, checks each against the VM's plan (a window over guest RAM, over a
passthrough or emulated device, or over another virtio node is refused, naming the node),
and attaches a :class:`~sel4vmm.devices.virtio.mmio.VirtioMmioTransport` per node as a
fault-callback reservation, its interrupt an SPI of the vGIC through
:class:`~.gic_controller.SpiLines` (the GICv2's ``VgicLines`` or the GICv3's).

Which device serves which node: a node whose name says ``console``, ``blk``/``block`` or
``net`` serves that device; the other backends take the remaining nodes in address order.
The network card (``--net``, :mod:`sel4vmm.devices.net_peers`) is made for a node whose
name says ``net`` (libvmm's ``virtio-net@160000``) unless ``--net none``; an explicit
``--net loopback|switch`` also takes a free node, and refuses a tree with none.
A node left without a backend is still served, as a transport with device ID 0: virtio 1.2
section 4.2.3.1.1 says "If the device ID is zero (0x0) the driver MUST ignore the device",
which is what QEMU's unused virtio-mmio slots look like, so the guest's probe skips it
instead of faulting on an unbacked window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sel4vmm.backends.unicorn.gic_controller import SpiLines
from sel4vmm.devices.gicv2 import NUM_PRIVATE
from sel4vmm.devices.net_peers import (
    NetBackend,
    NetConnection,
    connect_card,
    mac_for_vm,
    mac_from_property,
)
from sel4vmm.devices.net_switch import VirtualSwitch
from sel4vmm.devices.virtio.block import VirtioBlock
from sel4vmm.devices.virtio.console import VirtioConsole
from sel4vmm.devices.virtio.device import DeviceContext, VirtioDevice
from sel4vmm.devices.virtio.mmio import WINDOW_SIZE, VirtioMmioTransport
from sel4vmm.devices.virtio.virtqueue import SplitVirtqueue
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.fdt_tree import FdtNode, read_fdt
from sel4vmm.vm import VirtualMachine

VIRTIO_MMIO_COMPATIBLE = b"virtio,mmio"
#: GIC interrupt specifier (the binding's three cells): type 0 is an SPI, 4 level-high.
GIC_SPI = 0
GIC_LEVEL_HIGH = 4


@dataclass(frozen=True)
class VirtioNode:
    """One ``virtio,mmio`` node: its path, register window and interrupt (INTID)."""

    path: str
    base: int
    size: int
    intid: int
    #: The node's ``local-mac-address``, if it has one (a network card's address).
    mac: bytes | None = None

    @property
    def kind(self) -> str | None:
        """The device the node's name asks for, if it names one."""
        name = self.path.rsplit("/", 1)[-1].split("@", 1)[0].lower()
        for kind, words in (
            ("console", ("console",)),
            ("block", ("blk", "block")),
            ("net", ("net",)),
        ):
            if any(word in name for word in words):
                return kind
        return None


@dataclass(frozen=True)
class VirtioBackends:
    """What the command line gave the virtio devices: ``--disk``, ``--read-only``,
    ``--console virtio``, ``--net`` (``net_required`` when it was given explicitly).

    ``switch`` is the VMM's virtual switch the card plugs into with ``--net switch``: the
    one every VM of a multi-VM run shares; without one, the VM gets a switch of its own.
    """

    disk: Path | None = None
    read_only: bool = False
    console: bool = False
    net: NetBackend = "switch"
    net_required: bool = False
    switch: VirtualSwitch | None = field(default=None, compare=False)

    @property
    def any(self) -> bool:
        return self.disk is not None or self.console


@dataclass(frozen=True)
class ClaimedWindow:
    """Guest-physical space the plan already gives to something (RAM, a device)."""

    name: str
    base: int
    size: int


def _cells(data: bytes, offset: int, count: int) -> int:
    value = 0
    for i in range(count):
        value = value << 32 | int.from_bytes(data[offset + 4 * i : offset + 4 * i + 4], "big")
    return value


def _nodes_with_cells(root: FdtNode) -> Iterator[tuple[str, FdtNode, int, int]]:
    """Every node below the root with its path and its parent's address and size cells."""
    stack: list[tuple[str, FdtNode]] = [("", root)]
    while stack:
        path, node = stack.pop()
        address = node.properties.get("#address-cells", (2).to_bytes(4, "big"))
        size = node.properties.get("#size-cells", (1).to_bytes(4, "big"))
        address_cells, size_cells = _cells(address, 0, 1), _cells(size, 0, 1)
        for child in reversed(node.children):
            child_path = f"{path}/{child.name}"
            yield child_path, child, address_cells, size_cells
            stack.append((child_path, child))


def virtio_nodes(dtb: bytes, source: str) -> list[VirtioNode]:
    """The tree's ``virtio,mmio`` nodes, in address order; a malformed one is refused."""
    tree = read_fdt(dtb, source)
    found: list[VirtioNode] = []
    for path, node, address_cells, size_cells in _nodes_with_cells(tree.root):
        compatible = node.properties.get("compatible", b"").split(b"\0")
        if VIRTIO_MMIO_COMPATIBLE not in compatible:
            continue
        where = Location(source)
        reg = node.properties.get("reg", b"")
        entry = 4 * (address_cells + size_cells)
        if not 0 < address_cells <= 2 or not 0 < size_cells <= 2 or len(reg) < entry:
            raise Sel4VmmError(
                f"{path}: its reg does not hold one (address, size) of "
                f"{address_cells}+{size_cells} cells",
                location=where,
                fix="give the virtio,mmio node reg = <address size> in its parent's cells",
            )
        base = _cells(reg, 0, address_cells)
        size = _cells(reg, 4 * address_cells, size_cells)
        interrupts = node.properties.get("interrupts", b"")
        if len(interrupts) != 12:
            raise Sel4VmmError(
                f"{path}: interrupts is not one GIC specifier of three cells",
                location=where,
                fix="write interrupts = <0 N 4> (SPI N, level-high), as libvmm's linux.dts does",
            )
        kind, number, flags = (_cells(interrupts, 4 * i, 1) for i in range(3))
        if kind != GIC_SPI or flags & 0xF != GIC_LEVEL_HIGH:
            raise Sel4VmmError(
                f"{path}: interrupts = <{kind} {number} {flags}> is not a level-high SPI "
                "(virtio-mmio's interrupt is a level)",
                location=where,
                fix=f"write interrupts = <0 {number} 4>",
            )
        if size < WINDOW_SIZE:
            raise Sel4VmmError(
                f"{path}: its window of {size:#x} bytes is smaller than the virtio-mmio "
                f"register layout ({WINDOW_SIZE:#x})",
                location=where,
                fix=f"give it reg = <... {WINDOW_SIZE:#x}>",
            )
        mac = node.properties.get("local-mac-address")
        if mac is not None:
            mac = mac_from_property(mac, path, source)
        found.append(VirtioNode(path, base, size, NUM_PRIVATE + number, mac))
    return sorted(found, key=lambda node: node.base)


def check_nodes(nodes: list[VirtioNode], claimed: list[ClaimedWindow], source: str) -> None:
    """Refuse a node over RAM, over another device, over another node, or sharing an SPI."""
    for index, node in enumerate(nodes):
        end = node.base + node.size
        others = [ClaimedWindow(n.path, n.base, n.size) for n in nodes[:index]]
        for window in [*claimed, *others]:
            if node.base < window.base + window.size and window.base < end:
                raise Sel4VmmError(
                    f"{node.path}: its window [{node.base:#x}, {end:#x}) overlaps {window.name} "
                    f"[{window.base:#x}, {window.base + window.size:#x})",
                    location=Location(source),
                    fix="move the virtio,mmio node's reg to guest-physical space the VM "
                    "leaves free (libvmm's linux.dts uses 0x130000-0x170000)",
                )
        for other in nodes[:index]:
            if other.intid == node.intid:
                raise Sel4VmmError(
                    f"{node.path}: SPI {node.intid - NUM_PRIVATE} is already {other.path}'s",
                    location=Location(source),
                    fix="give every virtio,mmio node its own interrupt",
                )


class _NoDevice(VirtioDevice):
    """Device ID 0: a transport without a device, which drivers must ignore."""

    device_id = 0
    num_queues = 0

    def config(self) -> bytes:
        return b""

    def notify(self, queue: SplitVirtqueue, context: DeviceContext) -> None:
        del queue, context  # it has no queues: QueueNotify never reaches a queue


def assign(nodes: list[VirtioNode], backends: VirtioBackends) -> dict[str, VirtioNode]:
    """Which node each wanted backend (``console``, ``block``, ``net``) goes to."""
    net = backends.net != "none"
    wanted = [
        kind
        for kind, on in (("console", backends.console), ("block", backends.disk), ("net", net))
        if on
    ]
    chosen: dict[str, VirtioNode] = {}
    for kind in wanted:
        named = [n for n in nodes if n.kind == kind and n not in chosen.values()]
        if named:
            chosen[kind] = named[0]
    for kind in wanted:
        if kind in chosen or (kind == "net" and not backends.net_required):
            continue
        free = [n for n in nodes if n.kind is None and n not in chosen.values()]
        if not free:
            raise Sel4VmmError(
                f"the device tree has no free virtio,mmio node for the virtio {kind} device",
                fix='add a node with compatible = "virtio,mmio", reg and interrupts for it '
                "(as libvmm's virtio_mmio/client_vm/linux.dts does)",
            )
        chosen[kind] = free[0]
    return chosen


class VirtioDevices:
    """The transports attached to one VM, and the console among them (if any)."""

    def __init__(self) -> None:
        self.transports: list[VirtioMmioTransport] = []
        self.console: VirtioConsole | None = None
        self.disk: VirtioBlock | None = None
        self.net: NetConnection | None = None
        #: Bytes the guest has written to virtio-console (its first output says ``hvc0``
        #: is in use: Linux's hvc only fetches input for an open tty).
        self.console_output_bytes = 0

    @property
    def errors(self) -> list[str]:
        """Every transport's diagnostics (a driver that broke the virtio rules)."""
        return [f"{t.label}: {e}" for t in self.transports for e in t.errors]

    def close(self) -> None:
        if self.disk is not None:
            self.disk.close()
        if self.net is not None:
            self.net.disconnect()


def attach_virtio(
    vm: VirtualMachine,
    lines: SpiLines,
    dtb: bytes,
    source: str,
    backends: VirtioBackends,
    claimed: list[ClaimedWindow],
    console_output: Callable[[bytes], None],
) -> VirtioDevices:
    """Serve every ``virtio,mmio`` node of ``dtb`` on ``vm``; the devices made."""
    nodes = virtio_nodes(dtb, source)
    if backends.any and not nodes:
        raise Sel4VmmError(
            "--disk and --console virtio need virtio,mmio nodes in the guest's device tree, "
            "and it has none",
            location=Location(source),
            fix="boot with a DTS that declares them (--dts, e.g. libvmm's "
            "virtio_mmio/client_vm/linux.dts with --overlay gic_v2_overlay.dts)",
        )
    check_nodes(nodes, claimed, source)
    chosen = assign(nodes, backends)
    devices = VirtioDevices()
    if backends.disk is not None:
        devices.disk = VirtioBlock(backends.disk, read_only=backends.read_only)
    try:
        if backends.console:

            def output(data: bytes) -> None:
                devices.console_output_bytes += len(data)
                console_output(data)

            devices.console = VirtioConsole(output)
        by_node: dict[str, VirtioDevice] = {}
        if devices.console is not None:
            by_node[chosen["console"].path] = devices.console
        if devices.disk is not None:
            by_node[chosen["block"].path] = devices.disk
        if "net" in chosen:
            devices.net = _network_card(vm.name, chosen["net"], backends, source)
            by_node[chosen["net"].path] = devices.net.device
        for node in nodes:
            device = by_node.get(node.path) or _NoDevice()
            transport = VirtioMmioTransport(
                vm, node.base, device, lines.line(node.intid), label=node.path
            )
            devices.transports.append(transport)
    except BaseException:
        for transport in devices.transports:
            transport.detach()
        devices.close()
        raise
    return devices


def _network_card(
    vm_name: str, node: VirtioNode, backends: VirtioBackends, source: str
) -> NetConnection:
    """The VM's virtio-net card on ``node``, plugged into ``--net``'s peer."""
    assert backends.net != "none"
    switch = backends.switch
    if backends.net == "switch" and switch is None:
        switch = VirtualSwitch()
    return connect_card(
        node.mac if node.mac is not None else mac_for_vm(vm_name),
        backends.net,
        node=node.path,
        port_name=vm_name,
        switch=switch,
        source=source,
    )
