"""The VMM's event loop: run the vCPUs in slices and handle everything else in one place.

A seL4 VMM is a loop around ``seL4_Recv``: a vCPU runs until a fault, an interrupt or a
timer event arrives, the VMM handles it, and the vCPU resumes.  Here a vCPU runs inside
its engine's ``emu_start`` for a *slice*, and the powered-on vCPUs take turns, round
robin (one host thread, as unicorn is not thread-safe across shared memory hooks).  When
nothing can preempt the guest (one vCPU running, no timer armed, no terminal typing) a
slice runs freely until the guest traps (``WFI``, PSCI, a device asking for attention),
at full unicorn speed.  Otherwise slices are counted in instructions
(:attr:`EventLoop.slice_instructions`), because a count stops *between* instructions; an
asynchronous ``emu_stop`` can land just after a device access and make unicorn repeat it
(see :mod:`cpu`).  The :mod:`watchdog` only enforces the run's time limit, which ends the
run anyway.  Between slices the loop:

1. applies address-map changes made during the slice (deferred maps);
2. samples the level-triggered interrupt sources (each vCPU's virtual timer, PPI 27 in
   its own bank, and the UART's SPI) into the vGIC, as the VMM does on a ``VTimer`` fault
   or a device notification;
3. drives the virtual IRQ input (``HCR_EL2.VI``) of the vCPU about to run from its
   virtual CPU interface; unicorn takes the IRQ itself at the first instruction boundary
   where ``PSTATE.I`` is clear — which matters for Linux, which idles in ``WFI`` with
   IRQs masked and unmasks them for a few instructions only (``msr daifclr`` cannot be
   hooked, but it ends unicorn's translation block, where pending interrupts are taken);
4. skips vCPUs idle in ``WFI`` (trapped, as seL4 traps it: ``HCR_EL2.TWI``) until an
   interrupt is pending for them; when every powered-on vCPU idles, skips guest time to
   the next timer deadline (virtual time: idling costs no host time), waits for console
   input, or stops the VM if nothing could ever wake it.

The loop is also the VM's PSCI power controller (:class:`~.psci.CpuPower`): ``CPU_ON``
powers a secondary on at once, and the run ends when the last vCPU turns itself off or
any vCPU powers the system off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from unicorn.arm64_const import UC_ARM64_REG_PC

from sel4vmm.backends.unicorn.address_map import UnicornAddressMap
from sel4vmm.backends.unicorn.cpu import Vcpu
from sel4vmm.backends.unicorn.diagnostics import GuestDiagnostic, StopReason
from sel4vmm.backends.unicorn.engine import UcError
from sel4vmm.backends.unicorn.gic_controller import InterruptControllerPort
from sel4vmm.backends.unicorn.psci import MPIDR_AFFINITY_MASK, AffinityState
from sel4vmm.backends.unicorn.timer import VIRTUAL_TIMER_PPI
from sel4vmm.backends.unicorn.watchdog import Watchdog
from sel4vmm.devices.irq import LevelSource

#: emu_start's "until" address: one no A64 instruction can be fetched from (unaligned).
_NEVER = 0xFFFF_FFFF_FFFF_FFFE


class Round(Enum):
    """What one :meth:`EventLoop.step` did."""

    RAN = "ran"
    IDLE = "idle"
    STOPPED = "stopped"


@dataclass
class LoopStatistics:
    slices: int = 0
    irqs_delivered: int = 0
    idle_skips: int = 0
    mode_switches: int = 0
    #: Guest instructions of counted slices that ran to their count (a lower bound on
    #: what the guest executed: unicorn does not report a stopped slice's count).
    instructions_counted: int = 0


class EventLoop:
    """Runs a VM's vCPUs until the VM stops, handling interrupts, timers and idle between
    slices."""

    def __init__(
        self,
        vcpus: list[Vcpu],
        interrupts: InterruptControllerPort,
        address_maps: list[UnicornAddressMap],
        sources: list[LevelSource],
        *,
        wait_for_input: Callable[[float], bool] | None = None,
        slice_instructions: int = 200_000,
        input_poll_seconds: float = 0.05,
        interactive: bool | None = None,
    ) -> None:
        if not vcpus or len(vcpus) != len(address_maps):
            raise ValueError("one address map per vCPU, and at least one vCPU")
        self.vcpus = vcpus
        self.vcpu = vcpus[0]
        #: The VM's interrupt controller (either GIC, :mod:`.gic_controller`).
        self.interrupts = interrupts
        self.timer = vcpus[0].timer
        self.address_maps = address_maps
        self.address_map = address_maps[0]
        timers = [LevelSource(VIRTUAL_TIMER_PPI, v.timer.line_asserted, v.index) for v in vcpus]
        self.sources = [*timers, *sources]
        self._wait_for_input = wait_for_input
        #: An idle guest waits for a terminal (rather than stopping) when nothing else
        #: can wake it.
        self.interactive = wait_for_input is not None if interactive is None else interactive
        self.slice_instructions = slice_instructions
        self.input_poll_seconds = input_poll_seconds
        self.stats = LoopStatistics()
        #: Asked between slices whether the run should end (the console printed what
        #: the run waits for, the guest panicked, the user pressed Ctrl-C): the first
        #: reason returned ends it.  Checked between slices only, never inside unicorn.
        self.stop_checks: list[Callable[[], StopReason | None]] = []
        #: The vCPU inside unicorn right now, if any.
        self.current: Vcpu | None = None
        #: The vCPU whose stop ended the run.
        self.stopped_by: Vcpu | None = None
        #: Other VMs share the host CPU (:mod:`.system_loop`): every slice is counted, so
        #: the VM gives up the CPU after its slice even when nothing else in it would
        #: preempt it.
        self.shares_cpu = False
        self._started = time.monotonic()
        self._time_limit: float | None = None
        self._watchdog: Watchdog | None = None

    # -- PSCI power control (CpuPower) -------------------------------------------------------
    def _by_mpidr(self, mpidr: int) -> Vcpu | None:
        for vcpu in self.vcpus:
            if vcpu.mpidr & MPIDR_AFFINITY_MASK == mpidr:
                return vcpu
        return None

    def cpu_state(self, mpidr: int) -> AffinityState | None:
        vcpu = self._by_mpidr(mpidr)
        if vcpu is None:
            return None
        return AffinityState.ON if vcpu.powered else AffinityState.OFF

    def cpu_on(self, mpidr: int, entry: int, context_id: int) -> None:
        vcpu = self._by_mpidr(mpidr)
        assert vcpu is not None and not vcpu.powered  # handle_psci checked the state
        vcpu.power_on(entry, context_id)
        current = self.current
        if current is not None and not current.counting:
            current.request_exit()  # a free-running caller must give the new vCPU turns

    # -- interrupts -------------------------------------------------------------------------
    def sample_interrupts(self) -> None:
        """Drive every level source into the interrupt controller (GICv2: an asserted source
        not already pending or active is injected; GICv3: the level is the input's)."""
        interrupts = self.interrupts
        for source in self.sources:
            interrupts.drive(source.intid, source.cpu, source.asserted())

    def signal(self, cpu: int) -> None:
        """The vGIC loaded an interrupt for vCPU ``cpu``: make sure it gets to run soon.

        The target leaves unicorn if it is the one running; if another vCPU runs freely
        (uncounted), it is asked to leave too, or the target would wait for its next trap.
        """
        target = self.vcpus[cpu]
        target.request_exit()
        current = self.current
        if current is not None and current is not target and not current.counting:
            current.request_exit()

    def _count_deliveries(self) -> None:
        """IRQs delivered: those the guest took and acknowledged (GICC_IAR, ICC_IAR1_EL1)."""
        self.stats.irqs_delivered = self.interrupts.acknowledged()

    # -- slices -----------------------------------------------------------------------------
    def _preemptible(self) -> bool:
        """Whether something may need the running vCPU to stop: another vCPU wanting its
        turn, a timer, or a terminal."""
        if self.shares_cpu:
            return True
        runnable = 0
        for vcpu in self.vcpus:
            if vcpu.powered:
                if vcpu.timer.next_deadline() is not None:
                    return True
                runnable += not vcpu.waiting
        return runnable > 1 or self._wait_for_input is not None

    def _slice_count(self, vcpu: Vcpu) -> int:
        """Instructions for the next slice of ``vcpu`` (0: run until the guest traps).

        unicorn counts only in blocks translated while counting, so the engine's
        translation cache is flushed whenever counting starts or stops.
        """
        # Counting is sticky: switching flushes the translation cache, and a guest that
        # armed its timer once (Linux re-arms it on every tick) will need it again.
        counting = vcpu.counting or self._preemptible()
        if counting != vcpu.counting:
            vcpu.uc.ctl_flush_tb()
            vcpu.counting = counting
            self.stats.mode_switches += 1
        return self.slice_instructions if counting else 0

    def stop_slice(self) -> None:
        """Stop the slice running now, if any (the watchdog, from its own thread)."""
        current = self.current
        if current is not None and current.running:
            current.uc.emu_stop()

    def wake_pending(self) -> bool:
        """Whether an interrupt already waits for a powered-on vCPU (its WFI completes)."""
        self.sample_interrupts()
        return any(self.interrupts.irq_pending(v.index) for v in self.vcpus if v.powered)

    def next_deadline(self) -> int | None:
        """The earliest counter value at which a powered-on vCPU's timer fires, if any."""
        deadlines = [
            d for v in self.vcpus if v.powered and (d := v.timer.next_deadline()) is not None
        ]
        return min(deadlines) if deadlines else None

    def wake_all(self) -> None:
        """End every vCPU's WFI wait: WFI may complete without a reason (Arm ARM)."""
        for vcpu in self.vcpus:
            vcpu.waiting = False

    def stop(self, reason: StopReason, message: str | None = None) -> None:
        """Stop the VM from outside its slices (the run's time limit, a signal, a system
        loop ending every VM), with a diagnostic saying ``message`` if one is given; a VM
        that has stopped keeps its first reason."""
        if self.stopped_by is not None:
            return
        vcpu = next((v for v in self.vcpus if v.powered), self.vcpus[0])
        if vcpu.stop_reason is None:
            diagnostic = None
            if message is not None:
                diagnostic = GuestDiagnostic(message, pc=vcpu.pc, registers=vcpu.registers())
            vcpu.stop(reason, diagnostic)
        self.stopped_by = vcpu

    def idle_forever(self) -> None:
        """Nothing can ever wake the VM: stop it as :attr:`StopReason.IDLE_FOREVER`."""
        vcpu = next((v for v in self.vcpus if v.powered), self.vcpus[0])
        self.stop(
            StopReason.IDLE_FOREVER,
            f"{vcpu.vm.name}: the guest executed WFI with no timer armed, no interrupt "
            "pending and no input to come",
        )

    def _idle(self) -> None:
        """Every powered-on vCPU executed WFI: wake them by the next event, or stop the VM
        if none can come."""
        if self.wake_pending():
            return  # an interrupt is already waiting: WFI completes at once
        deadline = self.next_deadline()
        if deadline is not None:
            clock = self.vcpu.timer.clock
            if self.interactive and self._wait_for_input is not None:
                # Someone types at a terminal: idle at wall-clock pace (up to the deadline)
                # so keys arrive when they are typed and the host does not spin.
                ahead = clock.ticks_to_seconds(deadline - clock.now())
                if self._wait_for_input(min(max(ahead, 0.0), self.input_poll_seconds)):
                    return
            clock.advance_to(deadline)
            self.stats.idle_skips += 1
            return
        if self._wait_for_input is not None and self._wait_for_input(self.input_poll_seconds):
            return
        if not self.interactive:
            self.idle_forever()

    def _check_stop(self, vcpu: Vcpu) -> None:
        for check in self.stop_checks:
            reason = check()
            if reason is not None:
                vcpu.stop(reason)
                return

    def run(self, entry: int, *, time_limit: float | None = None) -> StopReason:
        """Run from ``entry`` on vCPU 0 until the guest stops (or ``time_limit`` host
        seconds pass)."""
        watchdog = Watchdog(self.stop_slice)
        try:
            self.begin(entry, time_limit=time_limit, watchdog=watchdog)
            while (outcome := self.step()) is not Round.STOPPED:
                if outcome is Round.IDLE:
                    self._idle()
                    self.wake_all()
            return self.finish()
        finally:
            watchdog.close()

    # -- stepping (one VM of several: :mod:`.system_loop`) -------------------------------------
    def begin(
        self,
        entry: int,
        *,
        time_limit: float | None = None,
        watchdog: Watchdog | None = None,
        started: float | None = None,
    ) -> None:
        """Prepare to :meth:`step` from ``entry`` on vCPU 0.

        ``time_limit`` host seconds from ``started`` (default: now) end the run;
        ``watchdog`` stops a free-running slice at that limit (several VMs share one:
        its stop function calls :meth:`stop_slice` of each).
        """
        self.vcpu.uc.reg_write(UC_ARM64_REG_PC, entry)
        self._started = time.monotonic() if started is None else started
        self._time_limit = time_limit
        self._watchdog = watchdog

    def step(self) -> Round:
        """One round: a slice of every powered-on vCPU that is not idle in WFI.

        :attr:`Round.RAN` when a vCPU ran, :attr:`Round.IDLE` when every powered-on
        vCPU waits in WFI with nothing pending (the caller decides how time passes:
        :meth:`run` skips to the next timer deadline), :attr:`Round.STOPPED` once the VM
        has stopped (then :meth:`finish`).
        """
        if self.stopped_by is not None:
            return Round.STOPPED
        ran = False
        for vcpu in self.vcpus:
            if not vcpu.powered:
                continue
            if vcpu.waiting:
                self.sample_interrupts()
                if not self.interrupts.irq_pending(vcpu.index):
                    continue
                vcpu.waiting = False
            ran = True
            self._slice(vcpu, self._started, self._time_limit, self._watchdog)
            self._check_stop(vcpu)
            if vcpu.stop_reason is not None:
                vcpu.settle_diagnostic()
                self.stopped_by = vcpu
                return Round.STOPPED
        if not any(v.powered for v in self.vcpus):
            last = self.vcpus[0]
            last.stop(StopReason.CPU_OFF)
            self.stopped_by = last
            return Round.STOPPED
        if not ran:
            self._check_stop(self.vcpus[0])
            if self.vcpus[0].stop_reason is not None:
                self.stopped_by = self.vcpus[0]
                return Round.STOPPED
            return Round.IDLE
        return Round.RAN

    def finish(self) -> StopReason:
        """Settle the address maps of a stopped VM and say why it stopped."""
        for address_map in self.address_maps:
            address_map.apply_queued()
        assert self.stopped_by is not None and self.stopped_by.stop_reason is not None
        return self.stopped_by.stop_reason

    def _slice(
        self, vcpu: Vcpu, started: float, time_limit: float | None, watchdog: Watchdog | None
    ) -> None:
        """One slice of ``vcpu``: deliver its IRQ, run it, and settle how it stopped."""
        uc = vcpu.uc
        address_map = self.address_maps[vcpu.index]
        address_map.apply_queued()
        self.sample_interrupts()
        vcpu.timer.sync()
        vcpu.update_virtual_irq()
        if vcpu.stale_code:
            uc.ctl_flush_tb()  # another vCPU invalidated the instruction cache
            vcpu.stale_code = False
        count = self._slice_count(vcpu)
        vcpu.exit_requested = False
        vcpu.wfi_trapped = False
        vcpu.begin_slice()
        vcpu.running = True
        address_map.running = True
        self.current = vcpu
        # A counted slice ends by itself and the time limit is checked after it; only a
        # free-running one needs the watchdog (arming it costs a lock hand-off per slice).
        guarded = time_limit is not None and not count and watchdog is not None
        if guarded:
            assert time_limit is not None and watchdog is not None
            watchdog.arm(max(time_limit - (time.monotonic() - started), 0.0))
        try:
            vcpu.until = _NEVER
            try:
                uc.emu_start(vcpu.pc, _NEVER, count=count)
            finally:
                vcpu.raise_callback_error()
        except UcError as error:
            if vcpu.stop_reason is None:
                vcpu.stop(
                    StopReason.CPU_EXCEPTION,
                    GuestDiagnostic(
                        f"{vcpu.vm.name}: the emulator stopped the guest: {error}",
                        pc=vcpu.pc,
                        registers=vcpu.registers(),
                    ),
                )
        finally:
            vcpu.running = False
            address_map.running = False
            self.current = None
            if guarded:
                assert watchdog is not None
                watchdog.disarm()
        self.stats.slices += 1
        if count and vcpu.stop_reason is None and not vcpu.exit_requested:
            self.stats.instructions_counted += count
        self._count_deliveries()
        if time_limit is not None and time.monotonic() - started >= time_limit:
            vcpu.stop(
                StopReason.TIME_LIMIT,
                GuestDiagnostic(
                    f"{vcpu.vm.name}: stopped after {time_limit:g} s",
                    pc=vcpu.pc,
                    registers=vcpu.registers(),
                ),
            )
        if vcpu.stop_reason is not None:
            return
        vcpu.finish_interrupted_instruction()
        if vcpu.powered and vcpu.wfi_trapped:
            vcpu.waiting = True
