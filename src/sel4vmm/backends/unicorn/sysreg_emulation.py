"""The ``MRS``/``MSR`` instructions the VMM emulates because unicorn's CPU model cannot.

unicorn's AArch64 CPU has no GICv3 CPU interface, so a guest's ICC_* accesses are
undefined instructions to it; and the ID registers it reports describe unicorn, not
the board the VMM presents (``HCR_EL2.TID3`` traps their reads instead).  A real
hypervisor serves both from its trap handler; here :class:`~sel4vmm.backends.unicorn.cpu.Vcpu`
does, and this module holds the part that does not depend on the vCPU's state: which
system-register move a trap is (decoded from the syndrome, or from the instruction
word found by the guest's stage-1 walk when the syndrome only says "undefined"), and
carrying that move out against the served registers and the guest's ``Xt``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from unicorn.arm64_const import UC_ARM64_REG_PSTATE

from sel4vmm.backends.unicorn.engine import AArch64Engine, UcError
from sel4vmm.backends.unicorn.stage1 import translate
from sel4vmm.backends.unicorn.sysregs import is_id_register
from sel4vmm.backends.unicorn.timer import SysReg
from sel4vmm.backends.unicorn.traps import (
    EC_SYSREG,
    TrappedSystemRegisters,
    sysreg_move_from_syndrome,
)
from sel4vmm.devices.gicv3 import SysregMove, decode_sysreg_move
from sel4vmm.errors import Sel4VmmError


class GuestRam(Protocol):
    """What the stage-1 walk and the instruction fetch read: the VM's guest RAM."""

    def read(self, address: int, size: int) -> bytes: ...


def _u64_reader(ram: GuestRam) -> Callable[[int], int | None]:
    def read_u64(address: int) -> int | None:
        try:
            return int.from_bytes(ram.read(address, 8), "little")
        except Sel4VmmError:  # outside guest RAM: no descriptor there
            return None

    return read_u64


def trapped_move(uc: AArch64Engine, ram: GuestRam, pc: int, esr: int) -> SysregMove | None:
    """The MRS/MSR this undefined instruction is, if the VMM may serve it."""
    if (int(uc.reg_read(UC_ARM64_REG_PSTATE)) >> 2) & 3 != 1:
        return None  # EL0's undefined instructions are the guest kernel's to handle
    ec = esr >> 26
    if ec == EC_SYSREG:
        move = sysreg_move_from_syndrome(esr)
        return move if move.is_read and is_id_register(move.encoding) else None
    if ec != 0:
        return None
    physical = translate(uc, _u64_reader(ram), pc)
    if physical is None:
        return None
    try:
        word = int.from_bytes(ram.read(physical, 4), "little")
    except Sel4VmmError:  # code outside guest RAM
        return None
    return decode_sysreg_move(word)


def emulate_move(
    uc: AArch64Engine,
    move: SysregMove,
    registers: TrappedSystemRegisters,
    id_registers: dict[SysReg, int],
    cpu: int,
    gpr_ids: list[int],
) -> bool:
    """Carry out ``move`` for vCPU ``cpu`` (``gpr_ids``: X0..X30); False: not ours.

    An ID register reads the value the VMM reports (or the CPU model's); any other
    register is the served one's (a GICv3's ICC_*), which may refuse it.
    """
    if is_id_register(move.encoding):
        if not move.is_read:
            return False  # ID registers are read-only: a write stays undefined
        value = id_registers.get(move.encoding)
        if value is None:
            try:
                value = int(uc.cpr_read(*move.encoding))
            except UcError:
                value = 0  # a reserved ID encoding reads as zero
        if move.rt != 31:
            uc.reg_write(gpr_ids[move.rt], value)
    elif move.is_read:
        answer = registers.read_sysreg(cpu, move.encoding)
        if answer is None:
            return False
        if move.rt != 31:
            uc.reg_write(gpr_ids[move.rt], answer)
    else:
        value = 0 if move.rt == 31 else int(uc.reg_read(gpr_ids[move.rt]))
        if not registers.write_sysreg(cpu, move.encoding, value):
            return False
    return True
