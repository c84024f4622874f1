"""The ARM generic virtual timer, driven by the VMM instead of unicorn.

unicorn has no timer interrupts of its own, so the VMM owns guest time.  The guest's
``MRS``/``MSR`` of the virtual-timer system registers (``CNTFRQ_EL0``, ``CNTVCT_EL0``,
``CNTV_CTL_EL0``, ``CNTV_CVAL_EL0``, ``CNTV_TVAL_EL0``) are hooked (``UC_HOOK_INSN`` with
``UC_ARM64_INS_MRS``/``MSR``) and answered from a :class:`GuestClock`; the event loop asks
:meth:`VirtualTimer.line_asserted` between slices and raises PPI 27 on the vGIC, as
seL4 does when it delivers a ``VTimer`` fault to the VMM.

Guest time follows host time while the guest runs, and jumps straight to the next timer
deadline while the guest idles in ``WFI`` (there is nothing to wait for), so a guest that
sleeps for a second finishes at once and a busy guest still sees time pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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

_MASK64 = (1 << 64) - 1


class GuestClock:
    """Guest counter ticks: host monotonic time plus the idle time the VMM skipped."""

    def __init__(
        self,
        frequency_hz: int = COUNTER_FREQUENCY_HZ,
        host_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.frequency_hz = frequency_hz
        self._host_ns = host_ns
        self._start_ns = host_ns()
        self._skipped = 0

    def now(self) -> int:
        elapsed = self._host_ns() - self._start_ns
        return elapsed * self.frequency_hz // 1_000_000_000 + self._skipped

    def advance_to(self, ticks: int) -> None:
        """Make the counter read at least ``ticks`` (the guest idled until then)."""
        behind = ticks - self.now()
        if behind > 0:
            self._skipped += behind

    def ticks_to_seconds(self, ticks: int) -> float:
        return ticks / self.frequency_hz


def _signed32(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value & 0x8000_0000 else value


class VirtualTimer:
    """EL1 virtual timer state: control, compare value, and the interrupt line it drives."""

    def __init__(self, clock: GuestClock) -> None:
        self.clock = clock
        self.control = 0
        self.compare = 0

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

    # -- system registers ----------------------------------------------------------------
    def read(self, register: SysReg) -> int | None:
        """Value of a timer register, or None if ``register`` is not one the VMM owns."""
        if register == CNTFRQ_EL0:
            return self.clock.frequency_hz
        if register in (CNTVCT_EL0, CNTPCT_EL0):
            return self.clock.now() & _MASK64
        if register == CNTV_CTL_EL0:
            status = CTL_ISTATUS if self.control & CTL_ENABLE and self._condition_met() else 0
            return (self.control & (CTL_ENABLE | CTL_IMASK)) | status
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
        return True
