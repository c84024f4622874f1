"""What each exception unicorn reports to ``UC_HOOK_INTR`` means to the VMM.

unicorn stops at every synchronous exception instead of taking it and reports QEMU's
exception number.  With the engine configured as a hypervisor's guest (:mod:`sysregs`)
the numbers the VMM sees are:

* 11 ``EXCP_HVC`` and 13 ``EXCP_SMC``: PSCI calls over either conduit (PC past the call);
* 1 ``EXCP_UDEF`` with syndrome EC 0x01: a trapped ``WFI`` (PC at the ``WFI``) — the vCPU
  idles; any other syndrome is an undefined instruction or a trapped system-register
  access *of the guest's own* (Linux emulates EL0's ``mrs midr_el1`` from its EC 0x18);
* 2 ``EXCP_SWI`` (``SVC``, PC past it), 3 and 4 (prefetch and data aborts of the guest's
  own stage-1 translation: translation, permission and access-flag faults, PC at the
  faulting instruction) and 7 ``EXCP_BKPT`` (``BRK``, Linux's ``BUG()``): vectored into
  the guest's EL1 with the syndrome and fault address QEMU computed (:mod:`syndrome`).

With a GICv3 (which unicorn's CPU models lack) two more undefined instructions are the
VMM's, not the guest's, when they come from EL1: syndrome EC 0x00 at an ``MRS``/``MSR`` of an
ICC_* register (the CPU has no such register), and EC 0x18 at an ``MRS`` of an ID register
that ``HCR_EL2.TID3`` traps to the hypervisor (the syndrome names the register and Rt).  The
vCPU serves those through :class:`TrappedSystemRegisters` and steps past them.

QEMU numbers them without a 10 (``EXCP_KERNEL_TRAP`` is 9, ``EXCP_HVC`` 11): the names
below follow ``target/arm/cpu.h`` of unicorn 2.1.4.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from sel4vmm.backends.unicorn.exceptions import EC_WFX
from sel4vmm.devices.gicv3 import SysregMove

EXCP_UDEF = 1
EXCP_SWI = 2
EXCP_PREFETCH_ABORT = 3
EXCP_DATA_ABORT = 4
EXCP_BKPT = 7
EXCP_HVC = 11
EXCP_SMC = 13

#: Syndrome EC of a trapped MSR, MRS or system instruction (Arm ARM, ESR_ELx).
EC_SYSREG = 0x18

#: ``#define EXCP_...`` of unicorn 2.1.4's ``qemu/target/arm/cpu.h``, by number.
EXCEPTION_NAMES = {
    1: "undefined instruction",
    2: "SVC",
    3: "prefetch abort",
    4: "data abort",
    5: "IRQ",
    6: "FIQ",
    7: "breakpoint",
    8: "exception exit",
    9: "kernel trap",
    11: "HVC",
    12: "HYP trap",
    13: "SMC",
    14: "virtual IRQ",
    15: "virtual FIQ",
    16: "semihosting call",
    17: "NOCP usage fault",
    18: "INVSTATE usage fault",
    19: "stack overflow usage fault",
    20: "lazy FP stacking fault",
    21: "LSERR secure fault",
    22: "unaligned usage fault",
}


class TrapAction(Enum):
    """What the VMM does with a reported exception."""

    PSCI = "psci"
    WFI = "wfi"
    VECTOR = "vector"
    STOP = "stop"


def classify(intno: int, esr: int) -> TrapAction:
    """The VMM's action for exception ``intno`` with syndrome ``esr``."""
    if intno in (EXCP_HVC, EXCP_SMC):
        return TrapAction.PSCI
    if intno == EXCP_UDEF and esr >> 26 == EC_WFX:
        return TrapAction.WFI
    if intno in (EXCP_UDEF, EXCP_SWI, EXCP_PREFETCH_ABORT, EXCP_DATA_ABORT, EXCP_BKPT):
        return TrapAction.VECTOR
    return TrapAction.STOP


def carries_fault_address(intno: int) -> bool:
    """Whether the exception sets FAR_EL1 (aborts do; SVC, BRK, UNDEF leave it)."""
    return intno in (EXCP_PREFETCH_ABORT, EXCP_DATA_ABORT)


def exception_name(intno: int) -> str:
    return EXCEPTION_NAMES.get(intno, f"exception {intno}")


def sysreg_move_from_syndrome(esr: int) -> SysregMove:
    """The MRS/MSR an EC 0x18 syndrome describes (ISS: Op0 [21:20], Op2 [19:17], Op1
    [16:14], CRn [13:10], Rt [9:5], CRm [4:1], Direction [0], 1 = read)."""
    op0, op2, op1 = esr >> 20 & 3, esr >> 17 & 7, esr >> 14 & 7
    crn, rt, crm = esr >> 10 & 0xF, esr >> 5 & 0x1F, esr >> 1 & 0xF
    return SysregMove(bool(esr & 1), (op0, op1, crn, crm, op2), rt)


class TrappedSystemRegisters(Protocol):
    """System registers the VMM provides because the CPU model has none (a GICv3's ICC_*).

    ``read_sysreg`` answers None and ``write_sysreg`` False for a register that is not
    theirs: the access then stays the guest's undefined instruction.
    """

    def read_sysreg(self, cpu: int, encoding: tuple[int, int, int, int, int]) -> int | None: ...

    def write_sysreg(
        self, cpu: int, encoding: tuple[int, int, int, int, int], value: int
    ) -> bool: ...
