"""The one interrupt-controller interface the event loop and the board use, for either GIC.

The loop needs four things of an interrupt controller, whatever its version: drive a level
source it samples between slices (each vCPU's virtual timer, PPI 27, in that vCPU's bank;
the PL011's SPI), say whether a vCPU's IRQ input is asserted (to drive ``HCR_EL2.VI`` and
to wake a vCPU idle in ``WFI``), and count the interrupts the guest acknowledged.
:class:`InterruptControllerPort` is that interface; :class:`Gicv2Controller` and
:class:`Gicv3Controller` adapt the two device models (:mod:`sel4vmm.devices.gicv2`, which
only knows "make pending once", and :class:`sel4vmm.devices.gicv3.Gicv3`, which keeps
input levels itself) without changing them.

The GICv3 adapter is also the vCPUs' :class:`~.traps.TrappedSystemRegisters`: its CPU
interface is ICC_* system registers, served from the vCPU's undefined-instruction path;
and it kicks a vCPU (the loop's ``signal``) when an interrupt becomes pending for it — a
device's line, an SGI through ``ICC_SGI1R_EL1``, a distributor write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sel4vmm.devices.gicv2 import NUM_PRIVATE, Vgic
from sel4vmm.devices.gicv3 import SPURIOUS_INTID, Gicv3, icc_register
from sel4vmm.devices.irq import IrqLine, LevelSource

Encoding = tuple[int, int, int, int, int]


class InterruptControllerPort(Protocol):
    """What the event loop asks of the VM's interrupt controller."""

    def drive(self, intid: int, cpu: int, asserted: bool) -> None:
        """A sampled level source: ``intid`` (in ``cpu``'s bank if private) is at ``asserted``."""
        ...

    def irq_pending(self, cpu: int) -> bool:
        """Whether vCPU ``cpu``'s IRQ input is asserted."""
        ...

    def acknowledged(self) -> int:
        """Interrupts the guest has acknowledged so far, over all vCPUs."""
        ...


class SpiLines(Protocol):
    """Devices' SPI lines, as the virtio devices get them: one line per SPI, plus the level
    sources the loop must sample for a controller that does not keep levels itself."""

    sources: list[LevelSource]

    def line(self, intid: int) -> IrqLine: ...


class Gicv2Controller:
    """The GICv2 model behind the loop's interface: a sampled source that is high and not
    already pending or active is injected (the VMM re-injects a level after EOI)."""

    def __init__(self, vgic: Vgic) -> None:
        self.vgic = vgic

    def drive(self, intid: int, cpu: int, asserted: bool) -> None:
        if asserted and not self.vgic.is_in_flight(intid, cpu):
            self.vgic.inject(intid, cpu)

    def irq_pending(self, cpu: int) -> bool:
        return self.vgic.cpus[cpu].irq_line()

    def acknowledged(self) -> int:
        return sum(cpu.acknowledged for cpu in self.vgic.cpus)


class Gicv3SpiLines:
    """A GICv3's SPIs as devices' :class:`IrqLine` s: the model keeps each input's level,
    so there is nothing for the loop to sample (:attr:`sources` stays empty)."""

    def __init__(self, gic: Gicv3) -> None:
        self.gic = gic
        self._taken: set[int] = set()
        self.sources: list[LevelSource] = []

    def line(self, intid: int) -> IrqLine:
        """A device's line for SPI ``intid`` (one device per line: they are not shared)."""
        if not NUM_PRIVATE <= intid < self.gic.state.num_lines:
            raise ValueError(
                f"INTID {intid} is not a shared peripheral interrupt of the GICv3 "
                f"({NUM_PRIVATE} to {self.gic.state.num_lines - 1})"
            )
        if intid in self._taken:
            raise ValueError(f"INTID {intid} already has a device")
        self._taken.add(intid)
        return IrqLine(self.gic, intid)


class Gicv3Controller:
    """A :class:`Gicv3` for ``num_cpus`` vCPUs (PE ``i`` has Aff0 = ``i``, as the vCPUs'
    MPIDR), with ``signal(cpu)`` called when an interrupt becomes pending for ``cpu``."""

    def __init__(self, num_cpus: int, signal: Callable[[int], None]) -> None:
        self._signal = signal
        self._signalled = [False] * num_cpus
        self._levels: dict[tuple[int, int], bool] = {}
        self._acknowledged = 0
        self.gic = Gicv3(num_cpus, on_change=self._changed)
        self.spi_lines = Gicv3SpiLines(self.gic)

    def _changed(self) -> None:
        gic = self.gic
        for cpu, was in enumerate(self._signalled):
            now = gic.pending_irq(cpu)
            if now and not was:
                self._signal(cpu)
            self._signalled[cpu] = now

    # -- the loop's interface ----------------------------------------------------------------
    def drive(self, intid: int, cpu: int, asserted: bool) -> None:
        key = (intid, cpu if intid < NUM_PRIVATE else 0)
        if self._levels.get(key, False) == asserted:
            return
        self._levels[key] = asserted
        if intid < NUM_PRIVATE:
            self.gic.private_lines(cpu).set_level(intid, asserted)
        else:
            self.gic.set_level(intid, asserted)

    def irq_pending(self, cpu: int) -> bool:
        return self.gic.pending_irq(cpu)

    def acknowledged(self) -> int:
        return self._acknowledged

    # -- the vCPUs' ICC_* system registers (TrappedSystemRegisters) --------------------------
    def read_sysreg(self, cpu: int, encoding: Encoding) -> int | None:
        name = icc_register(encoding)
        if name is None:
            return None
        value = self.gic.read_sysreg(cpu, name)
        if name == "ICC_IAR1_EL1" and value != SPURIOUS_INTID:
            self._acknowledged += 1
        return value

    def write_sysreg(self, cpu: int, encoding: Encoding, value: int) -> bool:
        name = icc_register(encoding)
        if name is None:
            return False
        self.gic.write_sysreg(cpu, name, value)
        return True
