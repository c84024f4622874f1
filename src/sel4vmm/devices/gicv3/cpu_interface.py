"""The GICv3 CPU interface: the ICC_* system registers a PE reads and writes with MRS/MSR.

On GICv3 the CPU interface is not a memory frame: the guest kernel uses system registers
(``ICC_SRE_EL1.SRE`` = 1), which a VMM traps or a CPU emulator hooks.  A backend maps the
instruction's ``(op0, op1, CRn, CRm, op2)`` to a name with :func:`icc_register` (the table
:data:`ICC_ENCODINGS`, from Linux's ``arch/arm64/include/asm/sysreg.h``) and calls
:meth:`CpuInterface.read_sysreg` / :meth:`CpuInterface.write_sysreg`.

Group 0 interrupts are never signalled (the model raises no FIQ): ``ICC_IAR0_EL1`` reads
1023, and the Group 0 / other-Security-state SGI registers (ICC_SGI0R_EL1, ICC_ASGI1R_EL1)
and ICC_EOIR0_EL1 are not in the table, so the backend treats them as unknown registers.
Linux puts every interrupt in Group 1 and uses only the Group 1 registers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from sel4vmm.devices.gicv3.state import (
    IDLE_PRIORITY,
    MIN_BINARY_POINT_1,
    NUM_SGIS,
    PRIORITY_BITS,
    PRIORITY_MASK,
    SPURIOUS_INTID,
    Gicv3State,
)

#: (op0, op1, CRn, CRm, op2) of every ICC_* register the model implements.
Encoding = tuple[int, int, int, int, int]
ICC_ENCODINGS: dict[str, Encoding] = {
    "ICC_PMR_EL1": (3, 0, 4, 6, 0),
    "ICC_IAR0_EL1": (3, 0, 12, 8, 0),
    "ICC_HPPIR0_EL1": (3, 0, 12, 8, 2),
    "ICC_BPR0_EL1": (3, 0, 12, 8, 3),
    "ICC_AP0R0_EL1": (3, 0, 12, 8, 4),
    "ICC_AP1R0_EL1": (3, 0, 12, 9, 0),
    "ICC_DIR_EL1": (3, 0, 12, 11, 1),
    "ICC_RPR_EL1": (3, 0, 12, 11, 3),
    "ICC_SGI1R_EL1": (3, 0, 12, 11, 5),
    "ICC_IAR1_EL1": (3, 0, 12, 12, 0),
    "ICC_EOIR1_EL1": (3, 0, 12, 12, 1),
    "ICC_HPPIR1_EL1": (3, 0, 12, 12, 2),
    "ICC_BPR1_EL1": (3, 0, 12, 12, 3),
    "ICC_CTLR_EL1": (3, 0, 12, 12, 4),
    "ICC_SRE_EL1": (3, 0, 12, 12, 5),
    "ICC_IGRPEN0_EL1": (3, 0, 12, 12, 6),
    "ICC_IGRPEN1_EL1": (3, 0, 12, 12, 7),
}
_NAMES: dict[Encoding, str] = {encoding: name for name, encoding in ICC_ENCODINGS.items()}

#: ICC_SRE_EL1: SRE, DFB and DIB are RAO/WI (system-register access only).
SRE_VALUE = 0b111
#: ICC_CTLR_EL1 fields (IHI 0069, ICC_CTLR_EL1).
CTLR_CBPR = 1 << 0
CTLR_EOIMODE = 1 << 1
CTLR_PRIBITS_SHIFT = 8
CTLR_A3V = 1 << 15
#: ICC_SGI1R_EL1 fields (IHI 0069, ICC_SGI1R_EL1).
SGI1R_IRM = 1 << 40
INTID_MASK = 0xFF_FFFF


#: A64 "move to/from system register" (MRS/MSR register form): bits 31:22 = 0b1101010100,
#: bit 21 = L (1: MRS), bit 20 = 1 (op0 is 2 or 3), then o0 (19), op1 (18:16), CRn (15:12),
#: CRm (11:8), op2 (7:5) and Rt (4:0) (Arm ARM, the MRS and MSR (register) encodings).
_SYSREG_MOVE = 0b1101010100


class SysregMove(NamedTuple):
    """One decoded MRS/MSR: which register, which direction, which X register (31: XZR)."""

    is_read: bool
    encoding: Encoding
    rt: int


def decode_sysreg_move(word: int) -> SysregMove | None:
    """Decode an A64 instruction word if it is an MRS or an MSR (register).

    unicorn 2.1's CPU models implement no GIC CPU interface, so an ICC_* access is an
    undefined instruction there (and an MRS/MSR hook that claims it makes unicorn run the
    instruction again): the backend decodes the word at the UDEF's PC with this, serves
    it with :meth:`CpuInterface.read_sysreg` / :meth:`CpuInterface.write_sysreg` and
    steps the PC past it.
    """
    if word >> 22 != _SYSREG_MOVE or not word >> 20 & 1:
        return None
    encoding = (
        2 | (word >> 19 & 1),
        word >> 16 & 0b111,
        word >> 12 & 0xF,
        word >> 8 & 0xF,
        word >> 5 & 0b111,
    )
    return SysregMove(bool(word >> 21 & 1), encoding, word & 0x1F)


def icc_register(encoding: Encoding) -> str | None:
    """The name of the ICC_* register an MRS/MSR encodes, or None if it is not one."""
    return _NAMES.get(encoding)


class CpuInterface:
    """Every PE's ICC_* registers over the shared :class:`Gicv3State`."""

    def __init__(self, state: Gicv3State, on_change: Callable[[], None]) -> None:
        self.state = state
        self._on_change = on_change

    @staticmethod
    def _name(register: str | Encoding) -> str:
        name = register if isinstance(register, str) else icc_register(register)
        if name is None or name not in ICC_ENCODINGS:
            raise KeyError(f"{register!r} is not an ICC_* register of the GICv3 model")
        return name

    def pending_irq(self, cpu: int) -> bool:
        """Whether the IRQ signal to ``cpu`` is asserted (ICC_IAR1_EL1 would not read 1023)."""
        return self.state.signalled(cpu) is not None

    def read_sysreg(self, cpu: int, register: str | Encoding) -> int:
        """An MRS of ``register`` (name or encoding) on PE ``cpu``.

        Write-only registers (EOIR, DIR, SGI1R) read as zero.
        """
        name = self._name(register)
        state = self.state
        pe = state.cpus[cpu]
        if name == "ICC_IAR1_EL1":
            intid = state.acknowledge(cpu)
            self._on_change()
            return intid
        if name == "ICC_HPPIR1_EL1":
            irq = state.highest_pending(cpu)
            return SPURIOUS_INTID if irq is None else irq.intid
        if name in ("ICC_IAR0_EL1", "ICC_HPPIR0_EL1"):
            return SPURIOUS_INTID
        if name == "ICC_RPR_EL1":
            running = state.running_priority(cpu)
            return 0xFF if running == IDLE_PRIORITY else running
        values = {
            "ICC_SRE_EL1": SRE_VALUE,
            "ICC_CTLR_EL1": (
                CTLR_A3V
                | (PRIORITY_BITS - 1) << CTLR_PRIBITS_SHIFT
                | (CTLR_EOIMODE if pe.eoi_mode else 0)
                | (CTLR_CBPR if pe.cbpr else 0)
            ),
            "ICC_PMR_EL1": pe.priority_mask,
            "ICC_BPR0_EL1": pe.binary_point0,
            "ICC_BPR1_EL1": min(pe.binary_point0 + 1, 7) if pe.cbpr else pe.binary_point,
            "ICC_IGRPEN0_EL1": int(pe.group0_enabled),
            "ICC_IGRPEN1_EL1": int(pe.group1_enabled),
            "ICC_AP1R0_EL1": self._active_priority_bits(cpu),
        }
        return values.get(name, 0)

    def _active_priority_bits(self, cpu: int) -> int:
        """ICC_AP1R0_EL1: one bit per active group priority (priority >> 3 with 5 bits)."""
        value = 0
        for _, priority in self.state.cpus[cpu].active_priorities:
            value |= 1 << (priority >> (8 - PRIORITY_BITS))
        return value

    def write_sysreg(self, cpu: int, register: str | Encoding, value: int) -> None:
        """An MSR of ``value`` to ``register`` (name or encoding) on PE ``cpu``.

        Read-only registers (IAR, HPPIR, RPR, SRE's fixed bits) ignore the write.
        """
        name = self._name(register)
        state = self.state
        pe = state.cpus[cpu]
        value &= (1 << 64) - 1
        if name == "ICC_EOIR1_EL1":
            intid = value & INTID_MASK
            if state.drop_priority(cpu, intid) and not pe.eoi_mode:
                state.deactivate(cpu, intid)
        elif name == "ICC_DIR_EL1":
            if pe.eoi_mode:  # with EOImode 0 a DIR write is UNPREDICTABLE: ignored
                state.deactivate(cpu, value & INTID_MASK)
        elif name == "ICC_SGI1R_EL1":
            self.send_sgi(cpu, value)
        elif name == "ICC_CTLR_EL1":
            pe.eoi_mode = bool(value & CTLR_EOIMODE)
            pe.cbpr = bool(value & CTLR_CBPR)
        elif name == "ICC_PMR_EL1":
            pe.priority_mask = value & PRIORITY_MASK
        elif name == "ICC_BPR1_EL1":
            if not pe.cbpr:
                pe.binary_point = max(value & 7, MIN_BINARY_POINT_1)
        elif name == "ICC_BPR0_EL1":
            pe.binary_point0 = max(value & 7, MIN_BINARY_POINT_1 - 1)
        elif name == "ICC_IGRPEN1_EL1":
            pe.group1_enabled = bool(value & 1)
        elif name == "ICC_IGRPEN0_EL1":
            pe.group0_enabled = bool(value & 1)
        elif name == "ICC_AP1R0_EL1":
            shift = 8 - PRIORITY_BITS
            pe.active_priorities = [
                (SPURIOUS_INTID, bit << shift) for bit in range(32) if value >> bit & 1
            ]
        self._on_change()

    def send_sgi(self, sender: int, value: int) -> None:
        """ICC_SGI1R_EL1: SGI ``value[27:24]`` to the listed PEs or all but the sender.

        Without IRM, the targets are the PEs with affinity Aff3.Aff2.Aff1 (bits 55:48,
        39:32, 23:16) whose Aff0 is ``RS * 16 + n`` for each bit n of TargetList (15:0).
        An SGI reaches a PE only if it is Group 1 there (IHI 0069, ICC_SGI1R_EL1, with DS = 1).
        """
        intid = value >> 24 & 0xF
        if value & SGI1R_IRM:
            targets = [pe for pe in self.state.cpus if pe.index != sender]
        else:
            upper = (value >> 48 & 0xFF) << 16 | (value >> 32 & 0xFF) << 8 | value >> 16 & 0xFF
            range_base = (value >> 44 & 0xF) * 16
            target_list = value & 0xFFFF
            targets = [
                pe
                for pe in self.state.cpus
                if pe.affinity >> 8 == upper
                and 0 <= (pe.affinity & 0xFF) - range_base < 16
                and target_list >> ((pe.affinity & 0xFF) - range_base) & 1
            ]
        for pe in targets:
            irq = pe.private[intid]
            if irq.group1 and intid < NUM_SGIS:
                irq.latched = True
