"""Which VM runs next, as the system description schedules them.

seL4 runs the highest-priority thread that is ready; equal priorities share the CPU
round robin; with the MCS kernel every thread also has a scheduling context — a *budget*
of CPU time per *period* (microseconds in a Microkit ``.system``: ``budget`` defaults to
1000 and ``period`` to the budget, ``config/microkit/protection_domains.py`` as the tool
reads them).  A thread that has used its budget is not ready until the budget comes back:
the kernel's sporadic server refills it one period after the budget began to be used.
A budget equal to its period never runs out (a round-robin scheduling context).

The rules, for the VMs of one system (each VM is one thread here: its VMM and vCPUs run
at one priority, on one budget):

1. :meth:`Scheduler.candidates` lists the VMs that may run, in the order to try them:
   highest priority first; within a priority, round robin — the VM that ran last goes to
   the back of its priority's queue.  Stopped VMs and VMs out of budget are not listed.
2. The system loop runs the first candidate whose round runs a vCPU; a candidate idle in
   WFI lets the next one try.  So a lower-priority VM runs only while every
   higher-priority one idles or is out of budget.
3. :meth:`Scheduler.charge` bills a VM for the board-clock ticks its round took.  When
   what it used in the current budget window reaches the budget, it waits until the
   window's refill time (the window's start plus one period).  A round cannot be cut at
   the exact tick its budget ends, so what it used beyond the budget is taken from the
   next window's budget (its share over time stays budget/period).
4. :meth:`Scheduler.next_release` is when the earliest waiting VM gets its budget back:
   when every other VM idles, the board clock may skip there.
5. A round cannot be preempted, so the system loop shortens its slices
   (:func:`fitted_slice`, from the VM's own measured board ticks per instruction, never
   below :data:`MIN_SLICE`) to end near the next moment it should give way: the end of
   its budget, and the next event of a higher-priority VM (a timer deadline, a budget
   refill: :meth:`Scheduler.higher`).

Time is the board clock's (counter ticks, :class:`~.timer.GuestClock`), the same clock
the guests read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sel4vmm.config.microkit.limits import BUDGET_DEFAULT

#: The shortest slice (instructions) a budget shortens a round to: each slice costs the
#: VMM a few microseconds however short it is.
MIN_SLICE = 2_000


@dataclass(frozen=True)
class Schedule:
    """A VM's scheduling parameters as the system gives them (Microkit's defaults)."""

    priority: int = 0
    budget_us: int = BUDGET_DEFAULT
    #: None: the budget (the tool's default period).
    period_us: int | None = None

    @property
    def period(self) -> int:
        return self.budget_us if self.period_us is None else self.period_us

    @property
    def limited(self) -> bool:
        """Whether the budget can run out (a budget below its period)."""
        return self.budget_us < self.period


@dataclass
class _Entry:
    schedule: Schedule
    budget_ticks: int
    period_ticks: int
    #: Ticks used in the current window (may start above 0: the last window's overrun).
    used: int = 0
    #: When the current budget window began (None: no budget used since the refill).
    window_start: int | None = None
    #: Out of budget until this tick.
    release: int | None = None
    stopped: bool = False
    #: Ticks charged over the whole run.
    total: int = 0
    #: How many times the budget ran out.
    throttles: int = 0


class Scheduler:
    """Priorities, round robin and budgets over a system's VMs (by index)."""

    def __init__(self, schedules: Sequence[Schedule], frequency_hz: int) -> None:
        self._entries = [
            _Entry(
                schedule,
                schedule.budget_us * frequency_hz // 1_000_000,
                schedule.period * frequency_hz // 1_000_000,
            )
            for schedule in schedules
        ]
        #: Per priority, the VMs in round-robin order (the next to try first).
        self._queues: dict[int, deque[int]] = {}
        for index, schedule in enumerate(schedules):
            self._queues.setdefault(schedule.priority, deque()).append(index)
        self._priorities = sorted(self._queues, reverse=True)

    def _refill(self, now: int) -> None:
        for entry in self._entries:
            if entry.release is not None and now >= entry.release:
                entry.release = None
                entry.window_start = None
                entry.used = max(entry.used - entry.budget_ticks, 0)
            elif (
                entry.window_start is not None
                and entry.release is None
                and now >= entry.window_start + entry.period_ticks
            ):
                # The window ended before the budget ran out: a fresh budget.
                entry.window_start = None
                entry.used = 0

    def candidates(self, now: int) -> list[int]:
        """The VMs that may run at board tick ``now``, in the order to try them."""
        self._refill(now)
        return [
            index
            for priority in self._priorities
            for index in self._queues[priority]
            if not self._entries[index].stopped and self._entries[index].release is None
        ]

    def charge(self, index: int, started: int, ticks: int) -> None:
        """VM ``index`` ran a round from tick ``started`` for ``ticks``: bill it, and put
        it behind the other VMs of its priority."""
        entry = self._entries[index]
        entry.total += ticks
        queue = self._queues[entry.schedule.priority]
        queue.remove(index)
        queue.append(index)
        if not entry.schedule.limited:
            return
        if entry.window_start is None:
            entry.window_start = started
        entry.used += ticks
        if entry.used >= entry.budget_ticks:
            entry.release = entry.window_start + entry.period_ticks
            entry.throttles += 1

    def stopped(self, index: int) -> None:
        """VM ``index`` has stopped: it is never a candidate again."""
        self._entries[index].stopped = True

    def remaining(self, index: int) -> int | None:
        """Ticks left of VM ``index``'s budget in its window (None: it cannot run out)."""
        entry = self._entries[index]
        if not entry.schedule.limited:
            return None
        return max(entry.budget_ticks - entry.used, 0)

    def higher(self, index: int) -> list[int]:
        """The VMs still running at a priority above VM ``index``'s."""
        priority = self._entries[index].schedule.priority
        return [
            other
            for other, entry in enumerate(self._entries)
            if entry.schedule.priority > priority and not entry.stopped
        ]

    def release(self, index: int) -> int | None:
        """When VM ``index`` gets its budget back (None: it is not out of budget)."""
        return self._entries[index].release

    def out_of_budget(self, index: int) -> bool:
        return self._entries[index].release is not None

    def next_release(self) -> int | None:
        """The earliest tick at which a VM out of budget gets it back."""
        releases = [e.release for e in self._entries if not e.stopped and e.release is not None]
        return min(releases) if releases else None

    def charged_ticks(self, index: int) -> int:
        """Board-clock ticks VM ``index``'s rounds took over the run."""
        return self._entries[index].total

    def throttles(self, index: int) -> int:
        """How many times VM ``index`` used up its budget."""
        return self._entries[index].throttles


def fitted_slice(
    left_ticks: int, ticks: int, instructions: int, slices: int, rounds: int, full: int
) -> int:
    """Instructions per slice so that VM's next round uses about ``left_ticks``.

    ``ticks`` and ``instructions`` are what its rounds took and counted so far (``slices``
    over ``rounds``: vCPUs per round); with no measurement yet, or more budget left than a
    full round takes, the ``full`` slice.
    """
    if instructions <= 0 or rounds <= 0 or ticks <= 0:
        return full
    per_round = max(slices / rounds, 1.0)
    wanted = int(left_ticks * instructions / ticks / per_round)
    return max(MIN_SLICE, min(full, wanted))
