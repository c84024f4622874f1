"""Interrupt lines into the GICv3: what a device or a timer holds to raise its interrupt.

Two shapes, both structural (no import of the devices layer's interrupt module is needed):

* the devices layer's controller call ``set_level(line, level)`` (``devices/irq.py``'s
  ``InterruptController``, which its ``IrqLine`` drives): :class:`~.gic.Gicv3` has it for
  SPIs and :class:`PrivateLines` for one PE's PPIs;
* a line object with ``raise_()`` / ``lower()`` (:class:`InterruptLine`, issue 13's wording):
  :class:`Gicv3Line`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class InterruptLine(Protocol):
    """An interrupt input: asserted by ``raise_()``, deasserted by ``lower()``."""

    def raise_(self) -> None: ...

    def lower(self) -> None: ...


class LineSink(Protocol):
    """What drives the lines: the GICv3's ``raise_line`` / ``lower_line``."""

    def raise_line(self, intid: int, cpu: int | None = None) -> None: ...

    def lower_line(self, intid: int, cpu: int | None = None) -> None: ...


@dataclass(frozen=True)
class Gicv3Line:
    """SPI ``intid``, or PPI ``intid`` of PE ``cpu``, as an :class:`InterruptLine`."""

    gic: LineSink
    intid: int
    cpu: int | None = None

    def raise_(self) -> None:
        self.gic.raise_line(self.intid, self.cpu)

    def lower(self) -> None:
        self.gic.lower_line(self.intid, self.cpu)


@dataclass(frozen=True)
class PrivateLines:
    """PE ``cpu``'s PPIs as an interrupt controller: ``set_level(ppi, level)``."""

    gic: LineSink
    cpu: int

    def set_level(self, line: int, level: bool) -> None:
        if level:
            self.gic.raise_line(line, self.cpu)
        else:
            self.gic.lower_line(line, self.cpu)
