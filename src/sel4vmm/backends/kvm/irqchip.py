"""KVM's in-kernel irqchip as the devices layer's :class:`~sel4vmm.devices.irq.InterruptController`.

The VM is created with ``KVM_CREATE_IRQCHIP`` (:mod:`.vm`): the two 8259 PICs, the IOAPIC
and the local APICs run inside the host kernel, and a VMM drives their inputs with
``KVM_IRQ_LINE``.  KVM's default routing sends GSI *n* to IOAPIC pin *n* and, for
*n* < 16, also to PIC input *n*; a GSI keeps the level last set, so a level-triggered
device (virtio-mmio, the 8250 with OUT2) keeps its line up until it lowers it, and an
IOAPIC entry programmed level-triggered re-delivers after the guest's EOI while the line is
still up.  That is the level semantics :class:`~sel4vmm.devices.irq.IrqLine` promises, so
every device of a KVM run raises its line through an ``IrqLine`` on this one object.

Which GSI is whose is decided here, once: the in-kernel PIT drives GSI 0, GSI 2 is the
PICs' cascade, COM1 is GSI 4 (the PC's assignment), and the virtio-mmio devices take
:data:`VIRTIO_GSIS` (ISA IRQs 5-7, free on a PC without LPT ports or a floppy).  They stay
below 16 so a guest that never finds the IOAPIC (a Linux without ACPI or MP tables falls
back to the PICs) still receives them.  :meth:`KvmIrqchip.line` refuses a GSI claimed twice.
"""

from __future__ import annotations

from collections import Counter
from typing import Final, Protocol

from sel4vmm.devices.irq import IrqLine
from sel4vmm.errors import Sel4VmmError

#: KVM's IOAPIC has 24 pins (``IOAPIC_NUM_PINS`` in arch/x86/kvm/ioapic.h); GSIs 0..23.
IOAPIC_PINS: Final = 24
#: Driven by the in-kernel PIT (``KVM_CREATE_PIT2`` injects IRQ 0).
PIT_GSI: Final = 0
#: The master PIC's input from the slave PIC.
CASCADE_GSI: Final = 2
#: GSIs the virtio-mmio devices of a KVM run take, in attachment order.
VIRTIO_GSIS: Final = (5, 6, 7)

_RESERVED: Final = {PIT_GSI: "the in-kernel PIT", CASCADE_GSI: "the PIC cascade"}


class IrqLineSetter(Protocol):
    """What the irqchip needs of the KVM VM (:meth:`.vm.KvmVm.set_irq_line`)."""

    def set_irq_line(self, irq: int, level: bool) -> None: ...


class KvmIrqchip:
    """GSIs of KVM's in-kernel PIC/IOAPIC, driven by level with ``KVM_IRQ_LINE``."""

    def __init__(self, vm: IrqLineSetter) -> None:
        self._vm = vm
        self._owners: dict[int, str] = dict(_RESERVED)
        #: The level each GSI was last set to.
        self.levels: dict[int, bool] = {}
        #: How many times each GSI went from low to high (tests and reports read it).
        self.raised: Counter[int] = Counter()

    def line(self, gsi: int, owner: str) -> IrqLine:
        """GSI ``gsi`` for the device ``owner``; a GSI has one owner."""
        self._check(gsi)
        if gsi in self._owners:
            raise Sel4VmmError(
                f"GSI {gsi} for {owner} is already {self._owners[gsi]}'s",
                fix=f"give {owner} a free GSI (the virtio devices use {VIRTIO_GSIS})",
            )
        self._owners[gsi] = owner
        return IrqLine(self, gsi)

    def release(self, gsi: int) -> None:
        """The device owning ``gsi`` is gone: lower the line and free the GSI."""
        if gsi in self._owners and gsi not in _RESERVED:
            if self.is_raised(gsi):
                self.set_level(gsi, False)
            del self._owners[gsi]

    def owner(self, gsi: int) -> str | None:
        return self._owners.get(gsi)

    def set_level(self, line: int, level: bool) -> None:
        self._check(line)
        if level and not self.levels.get(line, False):
            self.raised[line] += 1
        self.levels[line] = level
        self._vm.set_irq_line(line, level)

    def is_raised(self, gsi: int) -> bool:
        return self.levels.get(gsi, False)

    @staticmethod
    def _check(gsi: int) -> None:
        if not 0 <= gsi < IOAPIC_PINS:
            raise Sel4VmmError(
                f"GSI {gsi} is not an input of KVM's IOAPIC (pins 0..{IOAPIC_PINS - 1})",
                fix=f"use a GSI below {IOAPIC_PINS}",
            )
