"""virtio-mmio devices of a KVM run: the devices layer's transports at fixed x86 addresses.

x86 has no device tree to say where virtio-mmio windows are, so a KVM run puts them at a
documented place: device *i* at :data:`VIRTIO_MMIO_BASE` + *i* x :data:`VIRTIO_MMIO_STRIDE`
in the 32-bit PCI hole (above any RAM a VM of up to 3.25 GiB has, below the IOAPIC at
0xfec00000), its interrupt GSI :data:`~.irqchip.VIRTIO_GSIS` [*i*] of KVM's irqchip.  The
stride is a page because reservations in the guest address space are page-granular; the
register window inside it is virtio-mmio's 0x200 bytes.  Devices are attached console first,
then block, so a run with only ``--disk`` has its disk at 0xd0000000 on GSI 5.

Each window is a reservation of ``vm.memory`` with the transport's fault callback, exactly as
on the unicorn backend (the same :mod:`sel4vmm.devices.virtio` classes; nothing here knows
a register): KVM reports every access to it as an MMIO exit, which the exit loop hands to
``vm.memory.handle_fault``.  A window over RAM or another reservation is refused, naming both.
Rings are read through the VM's guest RAM, so a descriptor pointing outside it is the
transport's device error (DEVICE_NEEDS_RESET and a diagnostic in :attr:`KvmVirtio.errors`),
never an access outside the guest.

Linux finds such devices from its command line; :meth:`KvmVirtio.kernel_parameters` gives
the ``virtio_mmio.device=`` words for them (the size is written in hex, which the kernel's
``memparse`` reads).  ``Documentation/admin-guide/kernel-parameters.txt`` (torvalds/linux at
commit 000d388ed3bb) describes the parameter as::

    virtio_mmio.device=
            [VMMIO] Memory mapped virtio (platform) device.

                    <size>@<baseaddr>:<irq>[:<id>]
            where:
                    <size>     := size (can use standard suffixes
                                    like K, M and G)
                    <baseaddr> := physical base address
                    <irq>      := interrupt number (as passed to
                                    request_irq())
                    <id>       := (optional) platform device id
            example:
                    virtio_mmio.device=1K@0x100b0000:48:7

            Can be used multiple times for multiple devices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sel4vmm.backends.kvm.irqchip import VIRTIO_GSIS, KvmIrqchip
from sel4vmm.devices.virtio.block import VirtioBlock
from sel4vmm.devices.virtio.console import VirtioConsole
from sel4vmm.devices.virtio.device import VirtioDevice
from sel4vmm.devices.virtio.mmio import WINDOW_SIZE, VirtioMmioTransport
from sel4vmm.errors import Sel4VmmError
from sel4vmm.vm import VirtualMachine

#: Where the first virtio-mmio window of a KVM run is (guest-physical).
VIRTIO_MMIO_BASE: Final = 0xD000_0000
#: The distance between windows: one page, the granule of a reservation.
VIRTIO_MMIO_STRIDE: Final = 0x1000


@dataclass(frozen=True)
class VirtioRequest:
    """Which virtio devices a KVM run wants: ``--disk FILE`` (``--read-only``), a console."""

    disk: Path | None = None
    read_only: bool = False
    console: bool = False

    @property
    def any(self) -> bool:
        return self.disk is not None or self.console


@dataclass(frozen=True)
class VirtioSlot:
    """One attached device: its kind, register window and GSI."""

    kind: str
    base: int
    gsi: int

    def kernel_parameter(self) -> str:
        """Linux's ``virtio_mmio.device=<size>@<baseaddr>:<irq>`` for this device."""
        return f"virtio_mmio.device={WINDOW_SIZE:#x}@{self.base:#x}:{self.gsi}"


@dataclass
class KvmVirtio:
    """The virtio-mmio devices attached to one KVM run."""

    irqchip: KvmIrqchip
    slots: list[VirtioSlot] = field(default_factory=list)
    transports: list[VirtioMmioTransport] = field(default_factory=list)
    console: VirtioConsole | None = None
    disk: VirtioBlock | None = None

    @property
    def errors(self) -> list[str]:
        """Every device error so far (a driver that broke the virtio rules), labelled."""
        return [error for transport in self.transports for error in transport.errors]

    def kernel_parameters(self) -> str:
        """The command-line words that make a Linux guest probe these devices."""
        return " ".join(slot.kernel_parameter() for slot in self.slots)

    def slot(self, kind: str) -> VirtioSlot:
        return next(slot for slot in self.slots if slot.kind == kind)

    def detach(self) -> None:
        """Give the windows back to the address space and close the disk image."""
        for transport in self.transports:
            transport.detach()
        for slot in self.slots:
            self.irqchip.release(slot.gsi)
        self.transports.clear()
        self.slots.clear()
        if self.disk is not None:
            self.disk.close()


def attach_virtio(
    vm: VirtualMachine,
    irqchip: KvmIrqchip,
    request: VirtioRequest,
    console_output: Callable[[bytes], None],
) -> KvmVirtio:
    """Serve ``request``'s devices on ``vm`` at the default windows and GSIs.

    Nothing is left half-done: if any window or GSI is refused, the devices already
    attached are detached and the disk image is closed before the error propagates.
    """
    attached = KvmVirtio(irqchip)
    wanted: list[tuple[str, VirtioDevice]] = []
    if request.console:
        attached.console = VirtioConsole(console_output)
        wanted.append(("console", attached.console))
    if request.disk is not None:
        attached.disk = VirtioBlock(request.disk, read_only=request.read_only)
        wanted.append(("block", attached.disk))
    if len(wanted) > len(VIRTIO_GSIS):
        raise Sel4VmmError(
            f"{len(wanted)} virtio devices asked for; a KVM run has {len(VIRTIO_GSIS)} "
            f"virtio GSIs ({', '.join(map(str, VIRTIO_GSIS))})",
            fix="attach fewer virtio devices",
        )
    try:
        for index, (kind, device) in enumerate(wanted):
            slot = VirtioSlot(
                kind, VIRTIO_MMIO_BASE + index * VIRTIO_MMIO_STRIDE, VIRTIO_GSIS[index]
            )
            label = f"virtio-{kind}@{slot.base:#x}"
            line = irqchip.line(slot.gsi, label)
            try:
                transport = VirtioMmioTransport(vm, slot.base, device, line, label=label)
            except Sel4VmmError as error:
                irqchip.release(slot.gsi)
                raise Sel4VmmError(
                    f"{vm.name}: the virtio {kind} window [{slot.base:#x}, "
                    f"{slot.base + WINDOW_SIZE:#x}) is not free: {error.message}",
                    fix="give the VM less RAM (a KVM run's virtio windows start at "
                    f"{VIRTIO_MMIO_BASE:#x}) or leave that page unreserved",
                ) from None
            attached.slots.append(slot)
            attached.transports.append(transport)
    except BaseException:
        attached.detach()
        raise
    return attached
