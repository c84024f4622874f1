"""The GICv3 distributor (GICD): one 64 KiB frame the guest reaches through faults.

With affinity routing (always on here, as under KVM) the distributor owns the SPIs only:
its words for INTIDs 0-31 are RAZ/WI (IHI 0069, GICD_ISENABLER<n> and its neighbours)
and each SPI is routed by its
64-bit ``GICD_IROUTER<n>``.  ``GICD_ITARGETSR`` and ``GICD_SGIR`` are legacy registers,
RAZ/WI with affinity routing.  Unknown and reserved offsets read as zero and ignore writes,
so a guest probing the frame learns nothing and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sel4vmm.devices.gicv3.bank import InterruptRegisters
from sel4vmm.devices.gicv3.registers import serve_fault
from sel4vmm.devices.gicv3.state import (
    IROUTER_AFFINITY_MASK,
    IROUTER_ANY,
    NUM_PRIVATE,
    Gicv3State,
    Interrupt,
)
from sel4vmm.memory import FaultResult, MemoryFault

FRAME_SIZE = 0x10000

GICD_CTLR = 0x0000
GICD_TYPER = 0x0004
GICD_IIDR = 0x0008
GICD_TYPER2 = 0x000C
GICD_STATUSR = 0x0010
GICD_IROUTER = 0x6000
GICD_PIDR2 = 0xFFE8

#: GICD_CTLR bits with GICD_CTLR.DS = 1 (IHI 0069, GICD_CTLR, the layout when DS == 1).
CTLR_ENABLE_GRP0 = 1 << 0
CTLR_ENABLE_GRP1 = 1 << 1
CTLR_ARE = 1 << 4
CTLR_DS = 1 << 6
CTLR_RWP = 1 << 31

#: GICD_TYPER fields (IHI 0069, GICD_TYPER).
TYPER_CPU_NUMBER_SHIFT = 5
TYPER_IDBITS_SHIFT = 19
TYPER_A3V = 1 << 24
#: INTID bits the model implements (TYPER.IDbits + 1; ICC_CTLR_EL1.IDbits = 0 means 16).
INTID_BITS = 16

#: ARM as JEP106 implementer (0x43B), product 0, revision 0.
IIDR = 0x0000_043B
#: GICD_PIDR2 / GICR_PIDR2: ArchRev (bits 7:4) = 3 is GICv3; bits 3:0 = ARM's JEP106 code.
PIDR2 = 0x3B


class Distributor:
    """Register behaviour of the GICD frame over the shared :class:`Gicv3State`."""

    def __init__(self, state: Gicv3State, on_change: Callable[[], None]) -> None:
        self.state = state
        self._on_change = on_change
        self.bank = InterruptRegisters({irq.intid: irq for irq in state.spis}, on_change)

    def _spi(self, intid: int) -> Interrupt | None:
        if NUM_PRIVATE <= intid < self.state.num_lines:
            return self.state.spis[intid - NUM_PRIVATE]
        return None

    def fault(self, vm: Any, fault: MemoryFault, base: int) -> FaultResult:
        """Fault callback of the distributor's reservation; the cookie is its base."""
        del vm
        return serve_fault(fault, fault.address - base, self.read32, self.write32)

    def read32(self, offset: int) -> int:
        state = self.state
        if offset == GICD_CTLR:
            value = CTLR_ARE | CTLR_DS
            value |= CTLR_ENABLE_GRP0 if state.group0_enabled else 0
            value |= CTLR_ENABLE_GRP1 if state.group1_enabled else 0
            return value  # RWP: register writes take effect at once
        if offset == GICD_TYPER:
            return (
                TYPER_A3V
                | (INTID_BITS - 1) << TYPER_IDBITS_SHIFT
                | (min(state.num_cpus, 8) - 1) << TYPER_CPU_NUMBER_SHIFT
                | (state.num_lines // 32 - 1)
            )
        if offset == GICD_IIDR:
            return IIDR
        if offset == GICD_PIDR2:
            return PIDR2
        if self.bank.claims(offset):
            return self.bank.read32(offset)
        if GICD_IROUTER <= offset < GICD_IROUTER + 8 * 1020:
            irq = self._spi((offset - GICD_IROUTER) // 8)
            if irq is None:
                return 0
            return irq.router >> 32 if offset & 4 else irq.router & 0xFFFF_FFFF
        return 0

    def write32(self, offset: int, value: int, mask: int) -> None:
        state = self.state
        if offset == GICD_CTLR:
            if mask & 0xFF:
                state.group0_enabled = bool(value & CTLR_ENABLE_GRP0)
                state.group1_enabled = bool(value & CTLR_ENABLE_GRP1)
                self._on_change()
        elif self.bank.claims(offset):
            self.bank.write32(offset, value, mask)
        elif GICD_IROUTER <= offset < GICD_IROUTER + 8 * 1020:
            irq = self._spi((offset - GICD_IROUTER) // 8)
            if irq is None:
                return
            shift = 32 if offset & 4 else 0
            merged = irq.router & ~(mask << shift) | (value & mask) << shift
            irq.router = merged & (IROUTER_AFFINITY_MASK | IROUTER_ANY)
            self._on_change()
