"""The ARM generic virtual timer, driven by the VMM instead of unicorn.

unicorn has no timer interrupts of its own, and its build compiles the timer's state
changes out (QEMU's ``gt_cval_write`` and ``gt_ctl_write`` are under ``#if 0``): a guest's
``MSR CNTV_CVAL_EL0`` is lost and ``CNTV_CTL_EL0.ISTATUS`` never changes.  So the VMM owns
the timer: the guest's ``MSR`` of ``CNTV_CTL_EL0``, ``CNTV_CVAL_EL0`` and ``CNTV_TVAL_EL0``
is hooked (``UC_HOOK_INSN`` with ``UC_ARM64_INS_MSR``) and kept here, and the values the
guest reads back — control with the VMM's ISTATUS, and the compare value — are stored
raw into the engine's registers (:meth:`VirtualTimer.sync`), so ``MRS`` runs natively.
``MRS`` is not hooked at all: a hook on every system-register read made a Linux boot
2.6x slower.  The event loop asks :meth:`VirtualTimer.line_asserted` between slices and
raises PPI 27 on the vGIC, as seL4 does when it delivers a ``VTimer`` fault to the VMM.

The counter (``CNTVCT_EL0``) counts natively: unicorn derives it from the host's
``CLOCK_MONOTONIC`` at 62.5 MHz, minus ``CNTVOFF_EL2``.  :class:`GuestClock` computes the
same value from the same clock and owns the offset: guest time starts at 0 when the VM is
made, follows host time while the guest runs, and jumps straight to the next timer
deadline while every vCPU idles in ``WFI`` (there is nothing to wait for), so a guest that
sleeps for a second finishes at once and a busy guest still sees time pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sel4vmm.backends.unicorn.engine import AArch64Engine
from sel4vmm.backends.unicorn.sysregs import set_counter_offset

#: Counter frequency of qemu's virt board (62.5 MHz), which Linux reads from CNTFRQ_EL0.
COUNTER_FREQUENCY_HZ = 62_500_000
#: The virtual timer's private peripheral interrupt on a GICv2 (INTID 27).
VIRTUAL_TIMER_PPI = 27

CTL_ENABLE = 1 << 0
CTL_IMASK = 1 << 1
CTL_ISTATUS = 1 << 2

#: System registers as (op0, op1, CRn, CRm, op2).
SysReg = tuple[int, int, int, int, int]
CNTFRQ_EL0: SysReg = (3, 3, 14, 0, 0)
CNTPCT_EL0: SysReg = (3, 3, 14, 0, 1)
CNTVCT_EL0: SysReg = (3, 3, 14, 0, 2)
CNTV_TVAL_EL0: SysReg = (3, 3, 14, 3, 0)
CNTV_CTL_EL0: SysReg = (3, 3, 14, 3, 1)
CNTV_CVAL_EL0: SysReg = (3, 3, 14, 3, 2)
#: The registers :meth:`VirtualTimer.write` takes (the MSR hook needs no others).
WRITTEN_REGISTERS: tuple[SysReg, ...] = (
    CNTV_CTL_EL0,
    CNTV_CVAL_EL0,
    CNTV_TVAL_EL0,
    CNTFRQ_EL0,
    CNTVCT_EL0,
    CNTPCT_EL0,
)

_MASK64 = (1 << 64) - 1


class GuestClock:
    """Guest counter ticks: host monotonic time since the VM was made, plus the idle time
    the VMM skipped; every attached engine's native counter reads the same."""

    def __init__(
        self,
        frequency_hz: int = COUNTER_FREQUENCY_HZ,
        host_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.frequency_hz = frequency_hz
        self._host_ns = host_ns
        self._start_ticks = self._host_ticks()
        self._skipped = 0
        self._engines: list[AArch64Engine] = []

    def _host_ticks(self) -> int:
        return self._host_ns() * self.frequency_hz // 1_000_000_000

    @property
    def offset(self) -> int:
        """``CNTVOFF_EL2``: host counter minus guest counter."""
        return self._start_ticks - self._skipped

    @property
    def skipped_ticks(self) -> int:
        """Guest time the VMM skipped while every vCPU idled."""
        return self._skipped

    def attach(self, uc: AArch64Engine) -> None:
        """Make ``uc``'s native ``CNTVCT_EL0`` read this clock."""
        self._engines.append(uc)
        set_counter_offset(uc, self.offset)

    def now(self) -> int:
        return self._host_ticks() - self.offset

    def advance_to(self, ticks: int) -> None:
        """Make the counter read at least ``ticks`` (the guest idled until then)."""
        behind = ticks - self.now()
        if behind > 0:
            self._skipped += behind
            for uc in self._engines:
                set_counter_offset(uc, self.offset)

    def ticks_to_seconds(self, ticks: int) -> float:
        return ticks / self.frequency_hz


def _signed32(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value & 0x8000_0000 else value


class VirtualTimer:
    """EL1 virtual timer state: control, compare value, and the interrupt line it drives.

    With an engine, what the guest reads back is mirrored into it (:meth:`sync`).
    """

    def __init__(self, clock: GuestClock, uc: AArch64Engine | None = None) -> None:
        self.clock = clock
        self.control = 0
        self.compare = 0
        self._uc = uc
        #: The CNTV_CTL_EL0 value last stored into the engine.
        self._mirrored_control: int | None = None

    def bind(self, uc: AArch64Engine) -> None:
        """Mirror this timer into ``uc`` and make its counter read the timer's clock."""
        self._uc = uc
        self._mirrored_control = None
        self.clock.attach(uc)
        uc.cpr_write(*CNTV_CVAL_EL0, self.compare)
        self.sync()

    def sync(self) -> None:
        """Store control (with ISTATUS as of now) and compare into the engine, raw."""
        uc = self._uc
        if uc is None:
            return
        control = self.control_with_status()
        if control != self._mirrored_control:
            uc.cpr_write(*CNTV_CTL_EL0, control)
            self._mirrored_control = control

    # -- condition and line ------------------------------------------------------------
    def _condition_met(self) -> bool:
        return self.clock.now() >= self.compare

    def line_asserted(self) -> bool:
        """The timer's interrupt output: enabled, unmasked and the compare value reached."""
        return (
            bool(self.control & CTL_ENABLE)
            and not self.control & CTL_IMASK
            and self._condition_met()
        )

    def next_deadline(self) -> int | None:
        """Counter value at which the line will assert, or None if it never will."""
        if self.control & CTL_ENABLE and not self.control & CTL_IMASK:
            return self.compare
        return None

    def control_with_status(self) -> int:
        """CNTV_CTL_EL0 as the guest reads it: ENABLE, IMASK and the computed ISTATUS."""
        status = CTL_ISTATUS if self.control & CTL_ENABLE and self._condition_met() else 0
        return (self.control & (CTL_ENABLE | CTL_IMASK)) | status

    # -- system registers ----------------------------------------------------------------
    def read(self, register: SysReg) -> int | None:
        """Value of a timer register, or None if ``register`` is not one the VMM owns."""
        if register == CNTFRQ_EL0:
            return self.clock.frequency_hz
        if register in (CNTVCT_EL0, CNTPCT_EL0):
            return self.clock.now() & _MASK64
        if register == CNTV_CTL_EL0:
            return self.control_with_status()
        if register == CNTV_CVAL_EL0:
            return self.compare
        if register == CNTV_TVAL_EL0:
            return (self.compare - self.clock.now()) & 0xFFFF_FFFF
        return None

    def write(self, register: SysReg, value: int) -> bool:
        """Store a timer register; False if ``register`` is not one the VMM owns."""
        if register == CNTV_CTL_EL0:
            self.control = value & (CTL_ENABLE | CTL_IMASK)
        elif register == CNTV_CVAL_EL0:
            self.compare = value & _MASK64
        elif register == CNTV_TVAL_EL0:
            self.compare = (self.clock.now() + _signed32(value)) & _MASK64
        elif register in (CNTFRQ_EL0, CNTVCT_EL0, CNTPCT_EL0):
            pass  # read-only at EL1: the write is ignored, as on hardware
        else:
            return False
        if self._uc is not None and register in (CNTV_CVAL_EL0, CNTV_TVAL_EL0):
            self._uc.cpr_write(*CNTV_CVAL_EL0, self.compare)
        self.sync()
        return True
