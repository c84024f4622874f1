"""Interrupt lines into the GICv3: what a device or a timer holds to raise its interrupt.

The devices layer has one interrupt-line interface (``raise_()`` / ``lower()``, issue 13);
:class:`InterruptLine` is its shape, so any device model can be handed a
:class:`Gicv3Line` without knowing which interrupt controller is behind it.
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
