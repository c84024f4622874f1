"""Taking exceptions into the guest's EL1 vectors, which unicorn leaves to the embedder.

unicorn stops at an exception instead of vectoring it (``UC_HOOK_INTR``) and has no
interrupt input at all, so the backend does what the CPU would: save the return address in
``ELR_EL1`` and ``PSTATE`` in ``SPSR_EL1``, mask D/A/I/F, switch to EL1h and branch to
``VBAR_EL1`` plus the offset for the exception type and the EL/stack it came from
(Arm ARM D1.10.2).  The guest's own ``ERET`` then works natively.

Two things unicorn's register interface does not do for a mode change, measured with
Debian's kernel: writing ``PSTATE`` does not bank the stack pointer (the VMM saves the
interrupted SP to ``SP_EL0`` and loads ``SP_EL1`` itself when the exception comes from
EL0 or EL1t; without it Linux's first system call ends in "Attempted to kill init!"), and
it leaves unicorn's cached execution state (QEMU's ``hflags``) at the old EL until some
system register is written — so ``SPSR_EL1`` is written *after* ``PSTATE`` (without it:
"Insufficient stack space to handle exception!").
"""

from __future__ import annotations

from enum import IntEnum

from unicorn.arm64_const import (
    UC_ARM64_REG_ELR_EL1,
    UC_ARM64_REG_ESR_EL1,
    UC_ARM64_REG_FAR_EL1,
    UC_ARM64_REG_PC,
    UC_ARM64_REG_PSTATE,
    UC_ARM64_REG_SP,
    UC_ARM64_REG_SP_EL0,
    UC_ARM64_REG_SP_EL1,
    UC_ARM64_REG_VBAR_EL1,
)

from sel4vmm.backends.unicorn.engine import AArch64Engine

#: SPSR_EL1 as a system register (op0, op1, CRn, CRm, op2): unicorn has no named id for it.
SPSR_EL1 = (3, 0, 4, 0, 0)

PSTATE_MODE_MASK = 0xF
PSTATE_MODE_EL0T = 0b0000
PSTATE_MODE_EL1T = 0b0100
PSTATE_MODE_EL1H = 0b0101
PSTATE_I = 1 << 7
PSTATE_DAIF = 0xF << 6
#: PSTATE bits an exception saves in SPSR: NZCV, DAIF, the mode and SP selection.
_SPSR_SAVED = 0xF000_0000 | PSTATE_DAIF | 0x1F

#: ESR_ELx exception classes the backend raises or recognises.
EC_UNKNOWN = 0x00
EC_WFX = 0x01
EC_SVC64 = 0x15
EC_HVC64 = 0x16
EC_SMC64 = 0x17
ESR_IL = 1 << 25

#: Fixed A64 encodings the backend recognises at the faulting PC.
INSN_WFI = 0xD503207F
_EXCEPTION_GEN_MASK = 0xFFE0001F
INSN_SVC = 0xD4000001
INSN_HVC = 0xD4000002
INSN_SMC = 0xD4000003


class ExceptionKind(IntEnum):
    """Offset of the exception type within a group of vectors."""

    SYNCHRONOUS = 0x000
    IRQ = 0x080
    FIQ = 0x100
    SERROR = 0x180


def exception_generating_kind(insn: int) -> int | None:
    """INSN_SVC/INSN_HVC/INSN_SMC if ``insn`` is one of them (any immediate), else None."""
    masked = insn & _EXCEPTION_GEN_MASK
    return masked if masked in (INSN_SVC, INSN_HVC, INSN_SMC) else None


def vector_address(vbar: int, pstate: int, kind: ExceptionKind) -> int:
    """Where an exception taken to EL1 from the state ``pstate`` enters."""
    mode = pstate & PSTATE_MODE_MASK
    if mode == PSTATE_MODE_EL1T:
        group = 0x000  # current EL, SP_EL0
    elif mode == PSTATE_MODE_EL1H:
        group = 0x200  # current EL, SP_ELx
    else:
        group = 0x400  # lower EL, AArch64
    return vbar + group + kind


def take_exception(
    uc: AArch64Engine,
    kind: ExceptionKind,
    return_address: int,
    esr: int | None = None,
    far: int | None = None,
) -> int:
    """Enter the guest's EL1 vector for ``kind``; returns the new PC.

    ``esr``/``far`` are written for synchronous exceptions (the syndrome the guest's
    handler reads); IRQs leave them alone, as hardware does.
    """
    pstate = int(uc.reg_read(UC_ARM64_REG_PSTATE))
    vbar = uc.reg_read(UC_ARM64_REG_VBAR_EL1)
    uc.reg_write(UC_ARM64_REG_ELR_EL1, return_address)
    if esr is not None:
        uc.reg_write(UC_ARM64_REG_ESR_EL1, esr)
    if far is not None:
        uc.reg_write(UC_ARM64_REG_FAR_EL1, far)
    if pstate & PSTATE_MODE_MASK != PSTATE_MODE_EL1H:
        # The interrupted code ran on SP_EL0 (EL0t or EL1t): bank it, take SP_EL1.
        uc.reg_write(UC_ARM64_REG_SP_EL0, uc.reg_read(UC_ARM64_REG_SP))
        uc.reg_write(UC_ARM64_REG_SP, uc.reg_read(UC_ARM64_REG_SP_EL1))
    new_pstate = (pstate & ~(PSTATE_MODE_MASK | 0x10)) | PSTATE_DAIF | PSTATE_MODE_EL1H
    uc.reg_write(UC_ARM64_REG_PSTATE, new_pstate)
    # A system-register write after PSTATE makes unicorn recompute its EL state.
    uc.cpr_write(*SPSR_EL1, pstate & _SPSR_SAVED)
    target = vector_address(vbar, pstate, kind)
    uc.reg_write(UC_ARM64_REG_PC, target)
    return int(target)


def irqs_masked(pstate: int) -> bool:
    return bool(pstate & PSTATE_I)
