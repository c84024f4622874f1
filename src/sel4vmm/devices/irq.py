"""Interrupt lines: the one way a device signals a guest.

A device holds an :class:`IrqLine` (a controller and a line number) and raises or lowers
it; the controller — the vGIC for unicorn, KVM's in-kernel irqchip for x86 — implements
:class:`InterruptController`.  Lines are *levels*, as virtio-mmio's and the PL011's are: a
device keeps its line up while it has something pending, and the controller decides when
the guest sees it.  Edge-triggered sources are a raise followed by a lower.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class InterruptController(Protocol):
    """What a device needs of an interrupt controller: set the level of one input line."""

    def set_level(self, line: int, level: bool) -> None: ...


class IrqLine:
    """One input of an interrupt controller, as a device sees it.

    The level is remembered so the controller is only called when it changes: a device may
    call :meth:`set` after every register access without flooding the controller.
    """

    __slots__ = ("_level", "controller", "number")

    def __init__(self, controller: InterruptController, number: int) -> None:
        if number < 0:
            raise ValueError(f"interrupt line {number} is negative")
        self.controller = controller
        self.number = number
        self._level = False

    @property
    def level(self) -> bool:
        return self._level

    def set(self, level: bool) -> None:
        if level != self._level:
            self._level = level
            self.controller.set_level(self.number, level)

    def raise_line(self) -> None:
        self.set(True)

    def lower_line(self) -> None:
        self.set(False)

    def __repr__(self) -> str:
        return f"IrqLine({self.number}, level={self._level})"


class LineLevels:
    """An interrupt controller that only records levels and their changes.

    Serves a VM without a vGIC model (the device's state is still observable) and tests,
    which assert on :attr:`changes`.
    """

    def __init__(self) -> None:
        self.levels: dict[int, bool] = {}
        #: Every change, in order: (line, new level).
        self.changes: list[tuple[int, bool]] = []

    def set_level(self, line: int, level: bool) -> None:
        self.levels[line] = level
        self.changes.append((line, level))

    def is_raised(self, line: int) -> bool:
        return self.levels.get(line, False)


class LevelFunction:
    """An :class:`InterruptController` from a ``(line, level)`` function.

    KVM's ``KvmVm.set_irq_line`` (the ``KVM_IRQ_LINE`` ioctl) has that shape; the KVM
    backend's own controller is ``backends/kvm/irqchip.KvmIrqchip``, which also decides who
    owns which GSI.  Tests and simple callers wrap a function here without the device layer
    importing a backend.
    """

    def __init__(self, function: Callable[[int, bool], None]) -> None:
        self.function = function

    def set_level(self, line: int, level: bool) -> None:
        self.function(line, level)


@dataclass(frozen=True)
class LevelSource:
    """An interrupt line a backend samples between guest slices: ``asserted()`` drives
    interrupt ``intid`` (in CPU ``cpu``'s bank if it is private).

    Level-triggered lines stay pending for as long as their source is high, so a controller
    that only knows "make pending once" needs its sources re-sampled (each slice, after
    every EOI); this is the shape a controller's line adapter hands the backend.
    """

    intid: int
    asserted: Callable[[], bool]
    cpu: int = 0
