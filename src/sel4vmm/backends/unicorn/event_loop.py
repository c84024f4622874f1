"""The VMM's event loop: run the vCPU in slices and handle everything else in one place.

A seL4 VMM is a loop around ``seL4_Recv``: the vCPU runs until a fault, an interrupt or a
timer event arrives, the VMM handles it, and the vCPU resumes.  Here the vCPU runs inside
``emu_start`` for a *slice*.  When nothing can preempt the guest (no timer armed, no
terminal typing) a slice runs freely until the guest traps (``WFI``, PSCI, a device asking
for attention), at full unicorn speed.  Otherwise slices are counted in instructions
(:attr:`EventLoop.slice_instructions`), because a count stops *between* instructions; an
asynchronous ``emu_stop`` can land just after a device access and make unicorn repeat it
(see :mod:`cpu`).  The :mod:`watchdog` only enforces the run's time limit, which ends the
run anyway.  Between slices the
loop:

1. applies address-map changes made during the slice (deferred maps);
2. samples the level-triggered interrupt sources (the virtual timer's PPI 27, the UART's
   SPI) into the vGIC, as the VMM does on a ``VTimer`` fault or a device notification;
3. delivers a virtual IRQ by vectoring it (the virtual CPU interface asserts the line and
   ``PSTATE.I`` is clear);
4. when the guest idles in ``WFI`` with nothing pending, skips guest time to the next timer
   deadline, waits for console input, or stops the VM if nothing could ever wake it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from unicorn.arm64_const import UC_ARM64_REG_PSTATE

from sel4vmm.backends.unicorn.address_map import UnicornAddressMap
from sel4vmm.backends.unicorn.cpu import GuestDiagnostic, StopReason, Vcpu
from sel4vmm.backends.unicorn.engine import UcError
from sel4vmm.backends.unicorn.exceptions import (
    INSN_WFI,
    ExceptionKind,
    irqs_masked,
    take_exception,
)
from sel4vmm.backends.unicorn.gic import Vgic
from sel4vmm.backends.unicorn.timer import VIRTUAL_TIMER_PPI, VirtualTimer
from sel4vmm.backends.unicorn.watchdog import Watchdog

#: emu_start's "until" address: one no A64 instruction can be fetched from (unaligned).
_NEVER = 0xFFFF_FFFF_FFFF_FFFE


@dataclass(frozen=True)
class LevelSource:
    """An interrupt line the loop samples: ``asserted()`` drives vGIC interrupt ``intid``."""

    intid: int
    asserted: Callable[[], bool]


@dataclass
class LoopStatistics:
    slices: int = 0
    irqs_delivered: int = 0
    idle_skips: int = 0
    mode_switches: int = 0


class EventLoop:
    """Runs one vCPU until it stops, handling interrupts, timer and idle between slices."""

    def __init__(
        self,
        vcpu: Vcpu,
        vgic: Vgic,
        timer: VirtualTimer,
        address_map: UnicornAddressMap,
        sources: list[LevelSource],
        *,
        wait_for_input: Callable[[float], bool] | None = None,
        slice_instructions: int = 200_000,
        input_poll_seconds: float = 0.05,
    ) -> None:
        self.vcpu = vcpu
        self.vgic = vgic
        self.timer = timer
        self.address_map = address_map
        self.sources = [LevelSource(VIRTUAL_TIMER_PPI, timer.line_asserted), *sources]
        self._wait_for_input = wait_for_input
        self.slice_instructions = slice_instructions
        self.input_poll_seconds = input_poll_seconds
        self.stats = LoopStatistics()
        self._counting = False

    def sample_interrupts(self) -> None:
        """Forward every asserted level source that is not already pending or active."""
        for source in self.sources:
            if source.asserted() and not self.vgic.is_in_flight(source.intid):
                self.vgic.inject(source.intid)

    def _deliver_irq(self) -> bool:
        uc = self.vcpu.uc
        if not self.vgic.cpu.irq_line():
            return False
        if irqs_masked(int(uc.reg_read(UC_ARM64_REG_PSTATE))):
            return False
        take_exception(uc, ExceptionKind.IRQ, self.vcpu.pc)
        self.stats.irqs_delivered += 1
        return True

    def _preemptible(self) -> bool:
        """Whether something may need the guest to stop while it runs: a timer or a terminal."""
        return self.timer.next_deadline() is not None or self._wait_for_input is not None

    def _slice_count(self) -> int:
        """Instructions for the next slice (0: run until the guest traps).

        unicorn counts only in blocks translated while counting, so the translation cache
        is flushed whenever counting starts or stops.
        """
        counting = self._preemptible()
        if counting != self._counting:
            self.vcpu.uc.ctl_flush_tb()
            self._counting = counting
            self.stats.mode_switches += 1
        return self.slice_instructions if counting else 0

    def _stop_slice(self) -> None:
        if self.vcpu.running:
            self.vcpu.uc.emu_stop()

    def _in_wfi(self) -> bool:
        pc = self.vcpu.pc
        return self.vcpu.instruction_at(pc - 4) == INSN_WFI

    def _idle(self) -> None:
        """The guest executed WFI: wake it by the next event, or stop it if none can come."""
        self.sample_interrupts()
        if self.vgic.cpu.irq_line():
            return  # an interrupt is already waiting: WFI completes at once
        deadline = self.timer.next_deadline()
        if deadline is not None:
            self.timer.clock.advance_to(deadline)
            self.stats.idle_skips += 1
            return
        if self._wait_for_input is not None and self._wait_for_input(self.input_poll_seconds):
            return
        if self._wait_for_input is None:
            self.vcpu.stop(
                StopReason.IDLE_FOREVER,
                GuestDiagnostic(
                    f"{self.vcpu.vm.name}: the guest executed WFI with no timer armed, no "
                    "interrupt pending and no input to come",
                    pc=self.vcpu.pc,
                    registers=self.vcpu.registers(),
                ),
            )

    def run(self, entry: int, *, time_limit: float | None = None) -> StopReason:
        """Run from ``entry`` until the guest stops (or ``time_limit`` host seconds pass)."""
        watchdog = Watchdog(self._stop_slice)
        try:
            return self._run(entry, time_limit, watchdog)
        finally:
            watchdog.close()

    def _run(self, entry: int, time_limit: float | None, watchdog: Watchdog) -> StopReason:
        vcpu = self.vcpu
        uc = vcpu.uc
        pc = entry
        started = time.monotonic()
        while vcpu.stop_reason is None:
            self.address_map.apply_queued()
            self.sample_interrupts()
            if self._deliver_irq():
                pc = vcpu.pc
            count = self._slice_count()
            vcpu.exit_requested = False
            vcpu.begin_slice()
            vcpu.running = True
            self.address_map.running = True
            if time_limit is not None:
                watchdog.arm(max(time_limit - (time.monotonic() - started), 0.0))
            try:
                uc.emu_start(pc, _NEVER, count=count)
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
                self.address_map.running = False
                watchdog.disarm()
            self.stats.slices += 1
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
                vcpu.settle_diagnostic()
                break
            vcpu.finish_interrupted_instruction()
            pc = vcpu.pc
            if not vcpu.exit_requested and self._in_wfi():
                self._idle()
        self.address_map.apply_queued()
        assert vcpu.stop_reason is not None
        return vcpu.stop_reason
