"""Fake VM rounds and a fake board clock for the scheduling and system-loop tests.

A :class:`FakeVm` plays an :class:`~sel4vmm.backends.unicorn.event_loop.EventLoop` one
round at a time from a script: ``"run"`` takes ``cost`` clock ticks, ``("sleep", t)``
idles in WFI until board tick ``t`` (its timer deadline), ``"wfi"`` idles with no timer
until an interrupt is pending, and the VM powers off after the last step.  No unicorn
is involved, so the rules are checked exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.event_loop import LoopStatistics, Round
from sel4vmm.backends.unicorn.watchdog import Watchdog

#: One tick per microsecond: budgets and periods read as ticks.
FREQUENCY_HZ = 1_000_000

Step = str | tuple[str, int]


@dataclass
class FakeClock:
    ticks: int = 0
    frequency_hz: int = FREQUENCY_HZ
    skips: list[int] = field(default_factory=list)

    def now(self) -> int:
        return self.ticks

    def advance_to(self, ticks: int) -> None:
        if ticks > self.ticks:
            self.skips.append(ticks)
            self.ticks = ticks

    def ticks_to_seconds(self, ticks: int) -> float:
        return ticks / self.frequency_hz


class FakeVm:
    """A VM whose rounds follow a script (see the module docstring)."""

    def __init__(
        self, clock: FakeClock, script: list[Step], cost: int = 100, *, counted: bool = False
    ) -> None:
        """``counted``: a round counts its slice's instructions and takes ``cost`` ticks per
        200,000 of them (else ``cost`` whatever the slice, and counts none)."""
        self.counted = counted
        self.clock = clock
        self.script = list(script)
        self.cost = cost
        self.stats = LoopStatistics()
        self.shares_cpu = False
        self.slice_instructions = 200_000
        self.reason: StopReason | None = None
        self.message: str | None = None
        self.ran_at: list[int] = []
        self.slices_run: list[int] = []
        self.woken = 0
        self.pending = False

    def begin(
        self,
        entry: int,
        *,
        time_limit: float | None = None,
        watchdog: Watchdog | None = None,
        started: float | None = None,
    ) -> None:
        del entry, time_limit, watchdog, started

    def _sleeping_until(self) -> int | None:
        if self.script and isinstance(self.script[0], tuple):
            return self.script[0][1]
        return None

    def step(self) -> Round:
        if self.reason is not None:
            return Round.STOPPED
        if self.script and self.script[0] == "wfi":
            if not self.pending:
                return Round.IDLE
            self.script.pop(0)
            self.pending = False
        until = self._sleeping_until()
        if until is not None:
            if self.clock.now() < until and not self.pending:
                return Round.IDLE
            self.script.pop(0)
            self.pending = False
        if not self.script:
            self.reason = StopReason.SYSTEM_OFF
            return Round.STOPPED
        self.script.pop(0)
        self.ran_at.append(self.clock.now())
        self.slices_run.append(self.slice_instructions)
        if self.counted:
            self.clock.ticks += self.cost * self.slice_instructions // 200_000
            self.stats.instructions_counted += self.slice_instructions
        else:
            self.clock.ticks += self.cost
        self.stats.slices += 1
        if not self.script:
            self.reason = StopReason.SYSTEM_OFF
            return Round.STOPPED
        return Round.RAN

    def finish(self) -> StopReason:
        assert self.reason is not None
        return self.reason

    def wake_pending(self) -> bool:
        return self.pending

    def next_deadline(self) -> int | None:
        return self._sleeping_until()

    def wake_all(self) -> None:
        self.woken += 1

    def stop(self, reason: StopReason, message: str | None = None) -> None:
        if self.reason is None:
            self.reason = reason
            self.message = message

    def idle_forever(self) -> None:
        self.stop(StopReason.IDLE_FOREVER, "idle forever")

    def stop_slice(self) -> None:
        pass
