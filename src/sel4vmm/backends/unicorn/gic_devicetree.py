"""Which GIC the guest's device tree asks for, and whether the emulated board provides it.

The GIC version of a Linux guest comes from its final DTB (the one :mod:`.linux_boot`
places), as libvmm's examples choose it by the overlay they concatenate:
``gic_v2_overlay.dts`` (``arm,cortex-a15-gic`` at qemu virt's 0x8000000) or
``gic_v3_overlay.dts`` (``arm,gic-v3`` at 0x38800000, the i.MX 8M's addresses).  The
emulated board serves a GICv2 only where its table entry (``data/boards.toml``,
``qemu_virt_aarch64.gic``) and the system's passthrough put it — the distributor is the
VMM's, but the CPU interface is the board's GICV frame mapped at the guest's GICC address —
and a GICv3 wherever the guest's tree puts it, because all of it (distributor,
redistributors, ICC_* system registers) is emulated.  A GIC node that does not fit is one
located error naming the node, before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sel4vmm.backends.unicorn.virtio_devices import ClaimedWindow
from sel4vmm.devices.gicv3 import Gicv3Layout, gicv3_layout_from_dtb
from sel4vmm.devices.gicv3.distributor import FRAME_SIZE as GICV3_DISTRIBUTOR_SIZE
from sel4vmm.devices.gicv3.redistributor import STRIDE as REDISTRIBUTOR_STRIDE
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.fdt_tree import Fdt, FdtNode, read_fdt

#: ``compatible`` strings of the GICv2 the board emulates (Linux's
#: ``Documentation/devicetree/bindings/interrupt-controller/arm,gic.yaml``), and of a GICv3
#: (``arm,gic-v3.yaml``).
GICV2_COMPATIBLE = ("arm,gic-400", "arm,cortex-a15-gic", "arm,cortex-a7-gic")
GICV3_COMPATIBLE = "arm,gic-v3"


@dataclass(frozen=True)
class GuestGic:
    """The guest's interrupt controller node: its version, name and frames."""

    version: int
    node: str
    #: GICv2: the distributor's and the CPU interface's guest-physical bases.
    distributor: int = 0
    cpu_interface: int = 0
    #: GICv3: the distributor and redistributor regions.
    gicv3: Gicv3Layout | None = None


def _cells(node: FdtNode, name: str, default: int) -> int:
    raw = node.properties.get(name)
    return default if raw is None or len(raw) != 4 else int.from_bytes(raw, "big")


def _enabled(node: FdtNode) -> bool:
    status = node.properties.get("status")
    return status is None or status.split(b"\0", 1)[0] in (b"okay", b"ok")


def _gic_nodes(fdt: Fdt) -> list[tuple[FdtNode, FdtNode, int]]:
    """(parent, node, version) of every enabled GICv2 or GICv3 node."""
    found: list[tuple[FdtNode, FdtNode, int]] = []
    stack = [fdt.root]
    while stack:
        parent = stack.pop()
        for child in parent.children:
            compatible = child.properties.get("compatible", b"").decode("latin-1").split("\0")
            if _enabled(child) and GICV3_COMPATIBLE in compatible:
                found.append((parent, child, 3))
            elif _enabled(child) and any(c in compatible for c in GICV2_COMPATIBLE):
                found.append((parent, child, 2))
            stack.append(child)
    return found


def _check_interrupt_parent(fdt: Fdt, source: str) -> None:
    """Without a GIC node, the root's ``interrupt-parent`` must not name another controller
    (the guest would have none the VMM emulates) nor dangle (libvmm's ``linux.dts`` alone
    points at phandle 0x8001, which its GIC overlay provides)."""
    raw = fdt.root.properties.get("interrupt-parent")
    if raw is None or len(raw) != 4:
        return
    phandle = int.from_bytes(raw, "big")
    target = next(
        (
            node
            for node in fdt.root.walk()
            if node.properties.get("phandle") == raw or node.properties.get("linux,phandle") == raw
        ),
        None,
    )
    fix = (
        "add a GIC node for it: libvmm's gic_v2_overlay.dts (the board's GICv2) or "
        "gic_v3_overlay.dts (an emulated GICv3), with --overlay"
    )
    if target is None:
        raise Sel4VmmError(
            f"the root's interrupt-parent is phandle {phandle:#x}, which no node has: the "
            "guest would have no interrupt controller",
            location=Location(source),
            fix=fix,
        )
    strings = target.properties.get("compatible", b"").decode("latin-1").split("\0")
    compatible = ", ".join(string for string in strings if string)
    raise Sel4VmmError(
        f"the guest's interrupt controller {target.name} ({compatible or 'no compatible'}) is "
        f"not a GIC the emulator provides ({', '.join((*GICV2_COMPATIBLE, GICV3_COMPATIBLE))})",
        location=Location(source),
        fix=fix,
    )


def guest_gic(dtb: bytes, source: str) -> GuestGic | None:
    """The one GIC node of ``dtb`` (None: the tree has none the board knows)."""
    fdt = read_fdt(dtb, source)
    nodes = _gic_nodes(fdt)
    if not nodes:
        _check_interrupt_parent(fdt, source)
        return None
    if len(nodes) > 1:
        names = ", ".join(node.name for _, node, _ in nodes)
        raise Sel4VmmError(
            f"the device tree has {len(nodes)} GIC interrupt controllers ({names}); a VM has one",
            location=Location(source),
            fix="keep one GIC node: drop the base tree's when an overlay adds another "
            "(libvmm's linux.dts has none and takes gic_v2_overlay.dts or gic_v3_overlay.dts)",
        )
    parent, node, version = nodes[0]
    if version == 3:
        return GuestGic(3, node.name, gicv3=gicv3_layout_from_dtb(fdt, source))
    address_cells = _cells(parent, "#address-cells", 2)
    size_cells = _cells(parent, "#size-cells", 1)
    entry = 4 * (address_cells + size_cells)
    reg = node.properties.get("reg", b"")
    if not 1 <= address_cells <= 2 or len(reg) < 2 * entry:
        raise Sel4VmmError(
            f"{node.name}: a GICv2 node's reg needs the distributor and the CPU interface",
            location=Location(source),
            fix="give reg = <distributor base size> <cpu-interface base size> ...",
        )
    bases = [int.from_bytes(reg[i * entry : i * entry + 4 * address_cells], "big") for i in (0, 1)]
    return GuestGic(2, node.name, distributor=bases[0], cpu_interface=bases[1])


def check_gicv2_placement(
    gic: GuestGic, distributor: int, cpu_interface: int, board: str, source: str
) -> None:
    """A GICv2 node must sit where the board emulates its distributor and maps the GICV
    frame the guest uses as its CPU interface."""
    if (gic.distributor, gic.cpu_interface) == (distributor, cpu_interface):
        return
    raise Sel4VmmError(
        f"{gic.node}: the GICv2 has its distributor at {gic.distributor:#x} and its CPU "
        f"interface at {gic.cpu_interface:#x}, but {board} emulates a GICv2 with the "
        f"distributor at {distributor:#x} and the CPU interface (the GICV passthrough) at "
        f"{cpu_interface:#x}",
        location=Location(source),
        fix=f"put the node's reg at <{distributor:#x} ...> <{cpu_interface:#x} ...> (libvmm's "
        "gic_v2_overlay.dts), or use a GICv3 node (gic_v3_overlay.dts), which the emulator "
        "serves wherever the tree puts it",
    )


def gicv3_windows(layout: Gicv3Layout) -> list[ClaimedWindow]:
    """The guest-physical space a GICv3 takes: its distributor and redistributor regions."""
    windows = [ClaimedWindow("the GICv3 distributor", layout.distributor, GICV3_DISTRIBUTOR_SIZE)]
    windows += [
        ClaimedWindow("the GICv3 redistributors", base, size)
        for base, size in layout.redistributor_regions
    ]
    return windows


def check_gicv3_frames(
    layout: Gicv3Layout, num_vcpus: int, claimed: list[ClaimedWindow], source: str
) -> None:
    """The GICv3's frames must not overlap what the plan already gives out (RAM, the UART,
    the DMA engine), and its redistributors must have room for every vCPU."""
    for frame in gicv3_windows(layout):
        for other in claimed:
            if frame.base < other.base + other.size and other.base < frame.base + frame.size:
                raise Sel4VmmError(
                    f"{layout.node}: {frame.name} [{frame.base:#x}, {frame.base + frame.size:#x})"
                    f" overlap {other.name} [{other.base:#x}, {other.base + other.size:#x})",
                    location=Location(source),
                    fix="move the GIC node's reg to guest-physical space nothing else uses "
                    "(libvmm's gic_v3_overlay.dts puts it at 0x38800000)",
                )
    if layout.capacity() < num_vcpus:
        raise Sel4VmmError(
            f"{layout.node}: the redistributor region(s) hold {layout.capacity()} vCPU(s) but "
            f"the VM has {num_vcpus}",
            location=Location(source),
            fix=f"give the redistributors {num_vcpus * REDISTRIBUTOR_STRIDE:#x} bytes (128 KiB "
            "per vCPU), or use fewer vCPUs",
        )
