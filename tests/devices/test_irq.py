"""Interrupt lines: a level per line, the controller told only of changes."""

from __future__ import annotations

import pytest

from sel4vmm.devices.irq import InterruptController, IrqLine, LevelFunction, LineLevels


def test_line_tells_the_controller_only_about_changes() -> None:
    gic = LineLevels()
    line = IrqLine(gic, 42)
    line.raise_line()
    line.raise_line()
    assert gic.is_raised(42) and line.level
    line.lower_line()
    line.set(False)
    assert gic.changes == [(42, True), (42, False)]


def test_any_object_with_set_level_is_a_controller() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[int, bool]] = []

        def set_level(self, line: int, level: bool) -> None:
            self.calls.append((line, level))

    recorder = Recorder()
    controller: InterruptController = recorder
    IrqLine(controller, 7).raise_line()
    assert recorder.calls == [(7, True)]


def test_negative_line_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        IrqLine(LineLevels(), -1)


def test_a_level_function_is_a_controller() -> None:
    calls: list[tuple[int, bool]] = []
    line = IrqLine(LevelFunction(lambda number, level: calls.append((number, level))), 4)
    line.raise_line()
    line.lower_line()
    assert calls == [(4, True), (4, False)]
