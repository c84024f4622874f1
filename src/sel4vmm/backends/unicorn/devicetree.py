"""The device tree the emulated qemu-virt guest boots with.

A guest learns its machine from the DTB the VMM passes in ``x0``: where RAM is (``/memory``),
its console and command line (``/chosen``), and the UART, GIC and timer it may drive.  This
builds that tree from the guest's layout with sel4vmm's sequential writer (the same bytes
libfdt's ``FdtSw`` wrote), using the
bindings Linux expects on qemu's virt board (``arm,pl011``, ``arm,cortex-a15-gic``,
``arm,armv8-timer``, ``arm,psci-1.0`` with the ``hvc`` method).
"""

from __future__ import annotations

from dataclasses import dataclass

from sel4vmm.images.fdt_tree import FdtWriter

#: Interrupt specifier types of the GIC binding.
_GIC_SPI = 0
_GIC_PPI = 1
_IRQ_LEVEL_HIGH = 4
_IRQ_LEVEL_LOW = 8
_GIC_PHANDLE = 1
_CLOCK_PHANDLE = 2


@dataclass(frozen=True)
class SharedWindowNode:
    """A shared region the system maps into the VM, as its guest sees it.

    Written as a ``generic-uio`` node (libvmm's examples describe memory a guest shares
    with a UIO driver the same way; ``linux,uio-name`` is what Linux's
    ``uio_pdrv_genirq`` names the device), so a Linux guest can map it through
    ``/dev/uioN`` and a bare-metal guest finds it by ``sel4vmm,shared-with``.
    """

    name: str
    base: int
    size: int
    writable: bool
    #: The other parties (VMs or components) that map the same frames.
    shared_with: tuple[str, ...]


@dataclass(frozen=True)
class DoorbellNode:
    """The VM's doorbell page (Microkit layout) or one cross-VM event page (CAmkES).

    ``channels`` is what the guest may ring: (its id of the channel, the peer's name).
    """

    name: str
    base: int
    size: int
    intid: int
    #: ``"microkit"`` or ``"camkes-crossvm"`` (:mod:`sel4vmm.devices.doorbell`).
    layout: str
    channels: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class CrossVmNodes:
    """What a several-VM system gives one VM besides its RAM and devices."""

    vm_name: str
    shared: tuple[SharedWindowNode, ...] = ()
    doorbells: tuple[DoorbellNode, ...] = ()


@dataclass(frozen=True)
class GuestDeviceTree:
    """What the tree describes (guest-physical addresses)."""

    ram_base: int
    ram_size: int
    uart_base: int
    uart_spi: int
    gicd_base: int
    gicc_base: int
    bootargs: str
    dma_base: int | None = None
    #: One ``/cpus/cpu@N`` node per vCPU, ``reg`` = its MPIDR affinity, started by PSCI.
    num_cpus: int = 1
    #: Shared windows and doorbells of a several-VM run (issue 14 item 4).
    cross_vm: CrossVmNodes | None = None


def _cells(*values: int) -> bytes:
    """Big-endian 32-bit cells; 64-bit values become two cells."""
    out = bytearray()
    for value in values:
        out += value.to_bytes(4, "big")
    return bytes(out)


def _reg(base: int, size: int) -> bytes:
    return _cells(base >> 32, base & 0xFFFF_FFFF, size >> 32, size & 0xFFFF_FFFF)


def build_device_tree(tree: GuestDeviceTree) -> bytes:
    """A complete DTB (``#address-cells = #size-cells = 2``) for the guest."""
    sw = FdtWriter()
    with sw.add_node(""):
        sw.property_string("compatible", "linux,dummy-virt")
        sw.property_u32("#address-cells", 2)
        sw.property_u32("#size-cells", 2)
        sw.property_u32("interrupt-parent", _GIC_PHANDLE)
        with sw.add_node("chosen"):
            sw.property_string("bootargs", tree.bootargs)
            sw.property_string("stdout-path", f"/pl011@{tree.uart_base:x}")
            if tree.cross_vm is not None:
                sw.property_string("sel4vmm,vm", tree.cross_vm.vm_name)
        with sw.add_node(f"memory@{tree.ram_base:x}"):
            sw.property_string("device_type", "memory")
            sw.property("reg", _reg(tree.ram_base, tree.ram_size))
        with sw.add_node("cpus"):
            sw.property_u32("#address-cells", 1)
            sw.property_u32("#size-cells", 0)
            for cpu in range(tree.num_cpus):
                with sw.add_node(f"cpu@{cpu}"):
                    sw.property_string("device_type", "cpu")
                    sw.property_string("compatible", "arm,cortex-a53")
                    sw.property_u32("reg", cpu)
                    sw.property_string("enable-method", "psci")
        with sw.add_node("psci"):
            sw.property_string("compatible", "arm,psci-1.0")
            sw.property_string("method", "hvc")
        with sw.add_node("apb-pclk"):
            sw.property_string("compatible", "fixed-clock")
            sw.property_u32("#clock-cells", 0)
            sw.property_u32("clock-frequency", 24_000_000)
            sw.property_u32("phandle", _CLOCK_PHANDLE)
        with sw.add_node(f"pl011@{tree.uart_base:x}"):
            sw.property("compatible", b"arm,pl011\0arm,primecell\0")
            sw.property("reg", _reg(tree.uart_base, 0x1000))
            sw.property("interrupts", _cells(_GIC_SPI, tree.uart_spi - 32, _IRQ_LEVEL_HIGH))
            sw.property("clocks", _cells(_CLOCK_PHANDLE, _CLOCK_PHANDLE))
            sw.property("clock-names", b"uartclk\0apb_pclk\0")
        with sw.add_node(f"intc@{tree.gicd_base:x}"):
            sw.property_string("compatible", "arm,cortex-a15-gic")
            sw.property_u32("#interrupt-cells", 3)
            sw.property_u32("#address-cells", 0)
            sw.property("interrupt-controller", b"")
            sw.property("reg", _reg(tree.gicd_base, 0x1000) + _reg(tree.gicc_base, 0x2000))
            sw.property_u32("phandle", _GIC_PHANDLE)
        with sw.add_node("timer"):
            sw.property_string("compatible", "arm,armv8-timer")
            flags = 0xF08 | _IRQ_LEVEL_LOW
            # Secure, non-secure physical, virtual (PPI 11 = INTID 27), hypervisor.
            sw.property(
                "interrupts",
                _cells(
                    _GIC_PPI,
                    13,
                    flags,
                    _GIC_PPI,
                    14,
                    flags,
                    _GIC_PPI,
                    11,
                    flags,
                    _GIC_PPI,
                    10,
                    flags,
                ),
            )
            sw.property("always-on", b"")
        if tree.dma_base is not None:
            with sw.add_node(f"dma@{tree.dma_base:x}"):
                sw.property_string("compatible", "sel4vmm,copy-dma")
                sw.property("reg", _reg(tree.dma_base, 0x1000))
        if tree.cross_vm is not None:
            _cross_vm_nodes(sw, tree.cross_vm)
    return sw.to_bytes()


#: ``compatible`` of each node: sel4vmm's own first, then the string Linux's
#: ``uio_pdrv_genirq`` binds when booted with ``uio_pdrv_genirq.of_id=generic-uio``.
SHARED_MEMORY_COMPATIBLE = b"sel4vmm,shared-memory\0generic-uio\0"
DOORBELL_COMPATIBLE = {
    "microkit": b"sel4vmm,microkit-doorbell\0generic-uio\0",
    "camkes-crossvm": b"sel4vmm,crossvm-event-page\0generic-uio\0",
}


def _node_name(name: str) -> str:
    """A device-tree node name (the spec's characters: letters, digits, ``,._+-``)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in ",._+-") else "-" for c in name)


def _strings(values: tuple[str, ...]) -> bytes:
    return b"".join(value.encode() + b"\0" for value in values)


def _cross_vm_nodes(sw: FdtWriter, nodes: CrossVmNodes) -> None:
    for window in nodes.shared:
        with sw.add_node(f"{_node_name(window.name)}@{window.base:x}"):
            sw.property("compatible", SHARED_MEMORY_COMPATIBLE)
            sw.property("reg", _reg(window.base, window.size))
            sw.property_string("linux,uio-name", window.name)
            sw.property("sel4vmm,shared-with", _strings(window.shared_with))
            if not window.writable:
                sw.property("read-only", b"")
    for bell in nodes.doorbells:
        node = "doorbell" if bell.layout == "microkit" else _node_name(bell.name)
        with sw.add_node(f"{node}@{bell.base:x}"):
            sw.property("compatible", DOORBELL_COMPATIBLE[bell.layout])
            sw.property("reg", _reg(bell.base, bell.size))
            sw.property("interrupts", _cells(_GIC_SPI, bell.intid - 32, _IRQ_LEVEL_HIGH))
            sw.property_string("linux,uio-name", bell.name)
            if bell.channels:
                sw.property("sel4vmm,channels", _cells(*(ident for ident, _ in bell.channels)))
                sw.property(
                    "sel4vmm,channel-peers", _strings(tuple(peer for _, peer in bell.channels))
                )
