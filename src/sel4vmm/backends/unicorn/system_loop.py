"""One event loop over every VM of a system: rounds in the system's schedule, shared idle.

Each VM keeps its own :class:`~.event_loop.EventLoop` (its vCPUs, interrupts, PSCI), run
one *round* at a time (:meth:`~.event_loop.EventLoop.step`: a slice of each of its
vCPUs that is not idle).  This loop decides whose round comes next
(:mod:`.scheduling`: priority, round robin, budgets on the board clock) and what
happens when nobody can run:

* a VM whose round finds every vCPU in WFI lets the next candidate try;
* when no VM can run, the shared board clock skips to the earliest event of any VM —
  a guest timer deadline, or the moment a VM out of budget gets it back — (or waits
  for typed input when a terminal is attached), and every VM's WFI completes;
* when nothing could ever wake any VM, each idle VM stops as ``IDLE_FOREVER``;
* a VM that stops (PSCI ``SYSTEM_OFF``, a panic, ``--until`` on its console, a fault
  the VMM cannot handle) leaves the loop and the others go on;
* the run's host-time limit and the :attr:`SystemLoop.stop_checks` (Ctrl-C, SIGTERM)
  stop every VM still running.

The run ends when every VM has stopped; :meth:`SystemLoop.run` answers each VM's
:class:`VmOutcome`.  Usage (see :mod:`.system` for building the boards)::

    loop = SystemLoop.of_boards(system.boards, [Schedule(priority=100), Schedule()])
    loop.stop_checks.append(lambda: StopReason.INTERRUPTED if flag.raised else None)
    outcomes = loop.run(entries, time_limit=60)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sel4vmm.backends.unicorn.board import EmulatedBoard
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.event_loop import LoopStatistics, Round
from sel4vmm.backends.unicorn.scheduling import Schedule, Scheduler, fitted_slice
from sel4vmm.backends.unicorn.watchdog import Watchdog

#: Rounds the loop remembers in :attr:`SystemLoop.trace` (the newest).
TRACE_ROUNDS = 4096


class SteppedVm(Protocol):
    """What the system loop needs of one VM (an :class:`~.event_loop.EventLoop`)."""

    stats: LoopStatistics
    shares_cpu: bool
    slice_instructions: int

    def begin(
        self,
        entry: int,
        *,
        time_limit: float | None = None,
        watchdog: Watchdog | None = None,
        started: float | None = None,
    ) -> None: ...

    def step(self) -> Round: ...

    def finish(self) -> StopReason: ...

    def wake_pending(self) -> bool: ...

    def next_deadline(self) -> int | None: ...

    def wake_all(self) -> None: ...

    def stop(self, reason: StopReason, message: str | None = None) -> None: ...

    def idle_forever(self) -> None: ...

    def stop_slice(self) -> None: ...


class BoardClock(Protocol):
    """The board's time (a :class:`~.timer.GuestClock`)."""

    frequency_hz: int

    def now(self) -> int: ...

    def advance_to(self, ticks: int) -> None: ...

    def ticks_to_seconds(self, ticks: int) -> float: ...


@dataclass
class VmOutcome:
    """How one VM of the system ended."""

    name: str
    stop_reason: StopReason
    #: Board time (guest seconds, idle skips included) when the VM stopped.
    guest_seconds: float
    #: Board-clock seconds the VM's own rounds took (its share of the CPU).
    run_seconds: float
    #: Rounds the VM ran, and how often its budget ran out.
    rounds: int
    throttles: int
    statistics: LoopStatistics


@dataclass
class SystemStatistics:
    rounds: int = 0
    #: Rounds whose VM differs from the previous round's: switches between VMs.
    switches: int = 0
    idle_skips: int = 0
    #: Seconds of board time skipped while no VM could run.
    skipped_seconds: float = 0.0


@dataclass
class _Vm:
    name: str
    loop: SteppedVm
    #: The VM's own slice length, which a budget may shorten.
    full_slice: int = 0
    rounds: int = 0
    outcome: VmOutcome | None = None


class SystemLoop:
    """Runs several VMs' event loops in one host thread until every VM has stopped."""

    def __init__(
        self,
        names: Sequence[str],
        loops: Sequence[SteppedVm],
        clock: BoardClock,
        schedules: Sequence[Schedule] | None = None,
        *,
        wait_for_input: Callable[[float], bool] | None = None,
        interactive: bool | None = None,
        input_poll_seconds: float = 0.05,
    ) -> None:
        if not loops or len(names) != len(loops):
            raise ValueError("one name per VM, and at least one VM")
        schedules = list(schedules) if schedules is not None else [Schedule()] * len(loops)
        if len(schedules) != len(loops):
            raise ValueError("one schedule per VM")
        self._vms = [
            _Vm(name, loop, loop.slice_instructions)
            for name, loop in zip(names, loops, strict=True)
        ]
        for loop in loops:
            loop.shares_cpu = len(loops) > 1
        self.clock = clock
        self.scheduler = Scheduler(schedules, clock.frequency_hz)
        self._wait_for_input = wait_for_input
        self.interactive = wait_for_input is not None if interactive is None else interactive
        self.input_poll_seconds = input_poll_seconds
        #: Asked between rounds whether every VM should stop (Ctrl-C, SIGTERM).
        self.stop_checks: list[Callable[[], StopReason | None]] = []
        #: The VM (by index) of each of the last :data:`TRACE_ROUNDS` rounds that ran.
        self.trace: deque[int] = deque(maxlen=TRACE_ROUNDS)
        self.stats = SystemStatistics()

    @classmethod
    def of_boards(
        cls,
        boards: Sequence[EmulatedBoard],
        schedules: Sequence[Schedule] | None = None,
        *,
        wait_for_input: Callable[[float], bool] | None = None,
        interactive: bool | None = None,
    ) -> SystemLoop:
        """The loop over the VMs of one :class:`~.system.EmulatedSystem` (one clock)."""
        clocks = {id(board.clock) for board in boards}
        if len(clocks) != 1:
            raise ValueError("the VMs of one system share one board clock")
        return cls(
            [board.layout.name for board in boards],
            [board.loop for board in boards],
            boards[0].clock,
            schedules,
            wait_for_input=wait_for_input,
            interactive=interactive,
        )

    @property
    def names(self) -> list[str]:
        return [vm.name for vm in self._vms]

    # -- the run ---------------------------------------------------------------------------
    def run(self, entries: Sequence[int], *, time_limit: float | None = None) -> list[VmOutcome]:
        """Start VM *i* at ``entries[i]`` and run until every VM has stopped (or
        ``time_limit`` host seconds pass); each VM's outcome, in the VMs' order."""
        if len(entries) != len(self._vms):
            raise ValueError("one entry point per VM")
        watchdog = Watchdog(self._stop_slices)
        started = time.monotonic()
        try:
            for vm, entry in zip(self._vms, entries, strict=True):
                vm.loop.begin(entry, time_limit=time_limit, watchdog=watchdog, started=started)
            while self._active():
                if self._stopped_from_outside(started, time_limit):
                    break
                if not self._run_one_round():
                    self._idle()
        finally:
            watchdog.close()
        outcomes = [vm.outcome for vm in self._vms]
        assert all(outcome is not None for outcome in outcomes)
        return [outcome for outcome in outcomes if outcome is not None]

    def _active(self) -> list[int]:
        return [index for index, vm in enumerate(self._vms) if vm.outcome is None]

    def _stop_slices(self) -> None:
        for vm in self._vms:
            vm.loop.stop_slice()

    def _run_one_round(self) -> bool:
        """Run the first candidate whose round runs; False when none could."""
        clock = self.clock
        for index in self.scheduler.candidates(clock.now()):
            vm = self._vms[index]
            self._fit_to_budget(index)
            began = clock.now()
            outcome = vm.loop.step()
            if outcome is Round.IDLE:
                continue
            self.scheduler.charge(index, began, max(clock.now() - began, 0))
            vm.rounds += 1
            self.stats.rounds += 1
            if self.trace and self.trace[-1] != index:
                self.stats.switches += 1
            self.trace.append(index)
            if outcome is Round.STOPPED:
                self._leave(index)
            return True
        return False

    def _fit_to_budget(self, index: int) -> None:
        """Shorten the VM's slices to end when it should give way (scheduling rule 5):
        at the end of its budget, or at a higher-priority VM's next event."""
        vm = self._vms[index]
        now = self.clock.now()
        limits = []
        left = self.scheduler.remaining(index)
        if left is not None:
            limits.append(left)
        for other in self.scheduler.higher(index):
            event = self.scheduler.release(other)
            if event is None:
                event = self._vms[other].loop.next_deadline()
            if event is not None:
                limits.append(max(event - now, 0))
        if not limits:
            vm.loop.slice_instructions = vm.full_slice
            return
        stats = vm.loop.stats
        vm.loop.slice_instructions = fitted_slice(
            min(limits),
            self.scheduler.charged_ticks(index),
            stats.instructions_counted,
            stats.slices,
            vm.rounds,
            vm.full_slice,
        )

    def _leave(self, index: int) -> None:
        """VM ``index`` has stopped: record how, and let the others go on."""
        vm = self._vms[index]
        reason = vm.loop.finish()
        self.scheduler.stopped(index)
        clock = self.clock
        vm.outcome = VmOutcome(
            name=vm.name,
            stop_reason=reason,
            guest_seconds=clock.ticks_to_seconds(clock.now()),
            run_seconds=clock.ticks_to_seconds(self.scheduler.charged_ticks(index)),
            rounds=vm.rounds,
            throttles=self.scheduler.throttles(index),
            statistics=vm.loop.stats,
        )

    def _stop_all(self, reason: StopReason, message: Callable[[str], str | None]) -> None:
        for index in self._active():
            self._vms[index].loop.stop(reason, message(self._vms[index].name))
            self._leave(index)

    def _stopped_from_outside(self, started: float, time_limit: float | None) -> bool:
        """The time limit or a stop check ends every VM still running."""
        if time_limit is not None and time.monotonic() - started >= time_limit:
            self._stop_all(
                StopReason.TIME_LIMIT,
                lambda name: f"{name}: stopped after {time_limit:g} s",
            )
            return True
        for check in self.stop_checks:
            reason = check()
            if reason is not None:
                self._stop_all(reason, lambda name: None)
                return True
        return False

    # -- when no VM can run ----------------------------------------------------------------
    def _idle(self) -> None:
        """No VM could run: wake the VMs by the earliest event, or stop those nothing can
        ever wake."""
        active = self._active()
        ready = [i for i in active if not self.scheduler.out_of_budget(i)]
        if any(self._vms[i].loop.wake_pending() for i in ready):
            return  # an interrupt is already waiting: its WFI completes at once
        events = [d for i in ready if (d := self._vms[i].loop.next_deadline()) is not None]
        release = self.scheduler.next_release()
        if release is not None:
            events.append(release)
        clock = self.clock
        if events:
            target = min(events)
            if self.interactive and self._wait_for_input is not None:
                ahead = clock.ticks_to_seconds(target - clock.now())
                if self._wait_for_input(min(max(ahead, 0.0), self.input_poll_seconds)):
                    self._wake(ready)
                    return
            before = clock.now()
            clock.advance_to(target)
            self.stats.idle_skips += 1
            self.stats.skipped_seconds += clock.ticks_to_seconds(max(clock.now() - before, 0))
            self._wake(ready)
            return
        if self._wait_for_input is not None and self._wait_for_input(self.input_poll_seconds):
            self._wake(ready)
            return
        if not self.interactive:
            for index in ready:
                self._vms[index].loop.idle_forever()
                self._leave(index)

    def _wake(self, indices: list[int]) -> None:
        for index in indices:
            self._vms[index].loop.wake_all()
