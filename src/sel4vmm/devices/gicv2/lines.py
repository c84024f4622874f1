"""The vGIC as an :class:`~sel4vmm.devices.irq.InterruptController`: level-triggered SPIs.

Device models raise and lower lines (:mod:`sel4vmm.devices.irq`); the vGIC only knows
:meth:`~.distributor.Vgic.inject`, which makes an interrupt pending once.  A level-triggered SPI
(``interrupts = <0 N 4>``, ARM IHI 0048B 1.4.2) is pending for as long as its line is high,
so this adapter remembers each line's level and hands the event loop one
:class:`~sel4vmm.devices.irq.LevelSource` per line: the loop injects an asserted line that is not
already pending or active (each slice, and after every EOI), exactly as it does for the
PL011 and the timers.  A rising edge is injected at once, so a device completing a request
inside the fault path does not wait for the next slice; a falling edge withdraws the
interrupt if the guest has not taken it yet (a pending level-sensitive interrupt stops being
pending when its source deasserts), so the guest never takes an interrupt its device has
already cleared.
"""

from __future__ import annotations

from sel4vmm.devices.gicv2.distributor import NUM_PRIVATE, Vgic
from sel4vmm.devices.irq import IrqLine, LevelSource


class VgicLines:
    """Input lines of the vGIC's shared peripheral interrupts (INTID 32 and up)."""

    def __init__(self, vgic: Vgic) -> None:
        self.vgic = vgic
        self._levels: dict[int, bool] = {}
        #: One source per line handed out; the board adds them to the event loop.
        self.sources: list[LevelSource] = []

    def line(self, intid: int) -> IrqLine:
        """A device's line for SPI ``intid`` (one device per line: they are not shared)."""
        if not NUM_PRIVATE <= intid < self.vgic.num_lines:
            raise ValueError(
                f"INTID {intid} is not a shared peripheral interrupt of the vGIC "
                f"({NUM_PRIVATE} to {self.vgic.num_lines - 1})"
            )
        if intid in self._levels:
            raise ValueError(f"INTID {intid} already has a device")
        self._levels[intid] = False
        self.sources.append(LevelSource(intid, lambda: self._levels[intid]))
        return IrqLine(self, intid)

    def is_raised(self, intid: int) -> bool:
        return self._levels.get(intid, False)

    def set_level(self, line: int, level: bool) -> None:
        if line not in self._levels:
            raise ValueError(f"INTID {line} was not handed out by this controller")
        self._levels[line] = level
        if not level:
            self.vgic.withdraw(line)
        elif not self.vgic.is_in_flight(line):
            self.vgic.inject(line)
