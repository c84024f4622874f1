"""The emulated board itself: qemu virt as the boards table describes it, and the seL4
platform that boots on it with the reservations of the VMs it will run.

One board for one VM (:class:`~.board.EmulatedBoard` alone) or for several
(:class:`~.system.EmulatedSystem`): both boot it through :func:`board_platform`, so a VM gets
the same untyped, the same reserved RAM and the same device untyped either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sel4vmm.boards import load_board
from sel4vmm.sel4.arch import AARCH64
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform

if TYPE_CHECKING:
    from sel4vmm.backends.unicorn.board import GuestLayout

#: Board RAM: 1 GiB, like ``qemu-system-aarch64 -m 1G`` for libvmm's examples.
QEMU_VIRT_RAM_SIZE = 0x4000_0000
#: The emulated board is the boards table's qemu virt (``data/boards.toml``): its GIC
#: distributor, CPU interface, virtual CPU interface (GICV), PL011 and RAM base.
QEMU_VIRT = load_board("qemu_virt_aarch64", QEMU_VIRT_RAM_SIZE)
assert QEMU_VIRT.gic is not None and QEMU_VIRT.gic.cpu_interface is not None
assert QEMU_VIRT.gic.vcpu_interface is not None
QEMU_VIRT_GICD = QEMU_VIRT.gic.distributor.base
QEMU_VIRT_GICC = QEMU_VIRT.gic.cpu_interface.base
QEMU_VIRT_GICV = QEMU_VIRT.gic.vcpu_interface.base
QEMU_VIRT_UART = QEMU_VIRT.uart.base
QEMU_VIRT_RAM = QEMU_VIRT.ram[0].base
#: The PL011's interrupt: SPI 1, INTID 33 (``<irq irq="33" id="1"/>``).
QEMU_VIRT_UART_INTID = QEMU_VIRT.uart.irq


def board_physical_memory() -> PhysicalMemory:
    """qemu virt's physical memory from the boards table: GIC, UART and 1 GiB of RAM."""
    return PhysicalMemory(QEMU_VIRT.memory_ranges())


#: Board RAM seL4 and the VMM occupy when guest RAM comes from pools (as one VM's board).
KERNEL_RESERVED = MemoryRange(QEMU_VIRT_RAM, 16 << 20)


def one_to_one_ranges(layouts: Sequence[GuestLayout]) -> list[MemoryRange]:
    """The RAM the 1:1 VMs take from the kernel, merged where ranges touch or overlap
    (seL4 makes one device untyped per reserved range, never two over the same bytes)."""
    wanted = sorted(
        (layout.ram_base, layout.ram_base + layout.ram_size, layout.name)
        for layout in layouts
        if layout.one_to_one
    )
    merged: list[tuple[int, int, str]] = []
    for start, end, name in wanted:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), merged[-1][2])
        else:
            merged.append((start, end, name))
    return [MemoryRange(start, end - start, name="vm-memory") for start, end, _ in merged]


def kernel_reserved(layouts: Sequence[GuestLayout]) -> list[MemoryRange]:
    """seL4's and the VMM's own RAM: kept off limits when some VM's RAM comes from pools,
    unless 1:1 guest RAM already covers it (then the kernel lives elsewhere)."""
    if all(layout.one_to_one for layout in layouts):
        return []
    reserved = KERNEL_RESERVED
    if any(r.base < reserved.end and reserved.base < r.end for r in one_to_one_ranges(layouts)):
        return []
    return [reserved]


def board_platform(layouts: Sequence[GuestLayout], *, fix_language: str = "camkes") -> Sel4Platform:
    """The board's seL4, booted knowing every VM in ``layouts``: 1:1 guest RAM is reserved
    from the kernel (it becomes device untyped), and when some VM's RAM comes from pools
    the first 16 MiB of board RAM hold seL4 and the VMM, so pool frames never sit at a
    guest's own addresses.  ``fix_language`` ("microkit" or "camkes") words the planner's
    fixes in the configuration's own terms."""
    return Sel4Platform(
        board_physical_memory(),
        AARCH64,
        reserved=kernel_reserved(layouts),
        device_reserved=one_to_one_ranges(layouts),
        board_name="qemu-virt",
        fix_language=fix_language,
    )
