"""Where a GICv3's frames are in the guest: from an ``arm,gic-v3`` device-tree node.

The binding (Linux ``Documentation/devicetree/bindings/interrupt-controller/arm,gic-v3.yaml``)
puts the distributor first in ``reg``, then ``#redistributor-regions`` (default 1)
redistributor regions, then optional GICC/GICH/GICV frames, which a guest using system
registers ignores.  libvmm's ``gic_v3_overlay.dts`` is such a node: distributor at
0x38800000 (64 KiB), one redistributor region at 0x38880000 (0xc0000: room for six PEs).
"""

from __future__ import annotations

from dataclasses import dataclass

from sel4vmm.devices.gicv3.distributor import FRAME_SIZE as DISTRIBUTOR_SIZE
from sel4vmm.devices.gicv3.redistributor import STRIDE
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.dtb import DeviceTree
from sel4vmm.images.fdt_tree import Fdt, FdtNode, read_fdt

COMPATIBLE = "arm,gic-v3"


@dataclass(frozen=True)
class Gicv3Layout:
    """Guest-physical placement of one GICv3."""

    distributor: int
    #: (base, size) of each redistributor region, in ``reg`` order.
    redistributor_regions: tuple[tuple[int, int], ...]
    #: The node's name, for messages (``interrupt-controller@38800000``).
    node: str = ""

    @property
    def redistributors(self) -> int:
        """Base of the first redistributor region."""
        return self.redistributor_regions[0][0]

    def capacity(self) -> int:
        """How many PEs' redistributors the regions hold."""
        return sum(size // STRIDE for _, size in self.redistributor_regions)

    def redistributor_base(self, cpu: int) -> int:
        """Guest-physical address of PE ``cpu``'s RD_base (regions filled in order)."""
        remaining = cpu
        for base, size in self.redistributor_regions:
            count = size // STRIDE
            if remaining < count:
                return base + remaining * STRIDE
            remaining -= count
        raise ValueError(f"PE {cpu} has no redistributor: the regions hold {self.capacity()}")


def _u32(node: FdtNode, name: str, default: int) -> int:
    raw = node.properties.get(name)
    if raw is None:
        return default
    if len(raw) != 4:
        raise ValueError(f"{name} of {node.name or '/'} is {len(raw)} bytes, not one cell")
    return int.from_bytes(raw, "big")


def _enabled(node: FdtNode) -> bool:
    """A node without ``status``, or with "okay" (or the older "ok"), is in use."""
    status = node.properties.get("status")
    return status is None or status.split(b"\0", 1)[0] in (b"okay", b"ok")


def _gic_nodes(root: FdtNode) -> list[tuple[FdtNode, FdtNode]]:
    """(parent, node) of every enabled node whose ``compatible`` lists arm,gic-v3."""
    found: list[tuple[FdtNode, FdtNode]] = []
    stack = [root]
    while stack:
        parent = stack.pop()
        for child in parent.children:
            compatible = child.properties.get("compatible", b"").split(b"\0")
            if COMPATIBLE.encode() in compatible and _enabled(child):
                found.append((parent, child))
            stack.append(child)
    return found


def gicv3_layout_from_dtb(tree: DeviceTree | Fdt | bytes, path: str = "<dtb>") -> Gicv3Layout:
    """The distributor and redistributor regions of the first ``arm,gic-v3`` node.

    ``tree`` is a :class:`DeviceTree`, a parsed :class:`Fdt` or a blob.  A tree without
    such a node, or whose node's ``reg`` is too short, is one located error.
    """
    if isinstance(tree, DeviceTree):
        path = tree.path
        fdt = read_fdt(tree.to_bytes(), path)
    elif isinstance(tree, Fdt):
        fdt = tree
    else:
        fdt = read_fdt(tree, path)
    nodes = _gic_nodes(fdt.root)
    if not nodes:
        raise Sel4VmmError(
            f"the device tree has no '{COMPATIBLE}' interrupt controller",
            location=Location(path),
            fix="add libvmm's gic_v3_overlay.dts (--overlay), or use a GICv2 board",
        )
    parent, node = nodes[0]
    try:
        address_cells = _u32(parent, "#address-cells", 2)
        size_cells = _u32(parent, "#size-cells", 1)
        regions = _u32(node, "#redistributor-regions", 1)
    except ValueError as error:
        raise Sel4VmmError(
            str(error), location=Location(path), fix="write cell counts as '<2>'"
        ) from None
    stride = node.properties.get("redistributor-stride")
    if stride is not None and int.from_bytes(stride[:8], "big") not in (0, STRIDE):
        raise Sel4VmmError(
            f"{node.name}: redistributor-stride is {int.from_bytes(stride[:8], 'big'):#x}; "
            f"the emulated GICv3's redistributors are {STRIDE:#x} bytes (RD_base + SGI_base, "
            "no VLPI frames)",
            location=Location(path),
            fix="delete redistributor-stride from the node (Linux then steps 128 KiB)",
        )
    reg = node.properties.get("reg", b"")
    entry = 4 * (address_cells + size_cells)
    needed = 1 + regions
    if not 1 <= address_cells <= 2 or not 1 <= size_cells <= 2 or len(reg) < entry * needed:
        raise Sel4VmmError(
            f"{node.name}: 'reg' has {len(reg) // max(entry, 1)} (address, size) entries of "
            f"{address_cells}+{size_cells} cells; a GICv3 needs the distributor and "
            f"{regions} redistributor region(s)",
            location=Location(path),
            fix="give reg = <distributor base size> <redistributor-region base size>",
        )
    pairs = []
    for index in range(needed):
        raw = reg[index * entry : (index + 1) * entry]
        address = int.from_bytes(raw[: 4 * address_cells], "big")
        size = int.from_bytes(raw[4 * address_cells :], "big")
        pairs.append((address, size))
    distributor, distributor_size = pairs[0]
    if distributor_size < DISTRIBUTOR_SIZE or any(size < STRIDE for _, size in pairs[1:]):
        raise Sel4VmmError(
            f"{node.name}: the distributor needs {DISTRIBUTOR_SIZE:#x} bytes and each "
            f"redistributor region at least {STRIDE:#x} (RD_base + SGI_base); reg gives "
            + ", ".join(f"{size:#x}" for _, size in pairs),
            location=Location(path),
            fix="correct the sizes in the node's reg",
        )
    return Gicv3Layout(distributor, tuple(pairs[1:]), node.name)
