"""The GICv3 redistributors (GICR): one per PE, each two contiguous 64 KiB frames.

``RD_base`` holds the PE's control and identification (GICR_CTLR, IIDR, TYPER, WAKER,
PIDR2); ``SGI_base`` (RD_base + 64 KiB) holds the registers of its SGIs and PPIs, laid out
as the distributor's first words (IHI 0069, the GICR_* register map).  Linux finds a PE's frames by
walking the region, reading GICR_TYPER until its affinity matches the PE's MPIDR or
``Last`` is set (``gic_iterate_rdists`` in ``drivers/irqchip/irq-gic-v3.c``), so TYPER
reports each PE's affinity and sets ``Last`` on the final one.

A redistributor starts asleep (GICR_WAKER.ProcessorSleep = 1, ChildrenAsleep = 1); the
guest clears ProcessorSleep and waits for ChildrenAsleep to read zero, which here it does
at once.  A sleeping PE takes no part in 1-of-N SPI routing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sel4vmm.devices.gicv3.bank import InterruptRegisters
from sel4vmm.devices.gicv3.distributor import IIDR, PIDR2
from sel4vmm.devices.gicv3.registers import serve_fault
from sel4vmm.devices.gicv3.state import Gicv3State
from sel4vmm.memory import FaultResult, MemoryFault

#: RD_base and SGI_base of one PE.
FRAME_SIZE = 0x10000
STRIDE = 2 * FRAME_SIZE

GICR_CTLR = 0x0000
GICR_IIDR = 0x0004
GICR_TYPER = 0x0008
GICR_STATUSR = 0x0010
GICR_WAKER = 0x0014
GICR_PIDR2 = 0xFFE8

#: GICR_TYPER fields (IHI 0069, GICR_TYPER): Last, Processor_Number, Affinity_Value.
TYPER_LAST = 1 << 4
TYPER_PROCESSOR_NUMBER_SHIFT = 8
TYPER_AFFINITY_SHIFT = 32
#: GICR_WAKER (IHI 0069, GICR_WAKER).
WAKER_PROCESSOR_SLEEP = 1 << 1
WAKER_CHILDREN_ASLEEP = 1 << 2


class Redistributors:
    """Every PE's redistributor, one contiguous region of ``STRIDE``-sized pairs."""

    def __init__(self, state: Gicv3State, on_change: Callable[[], None]) -> None:
        self.state = state
        self._on_change = on_change
        #: PEs whose redistributor ends a region (GICR_TYPER.Last); :meth:`Gicv3.attach`
        #: sets it from the layout, one region by default.
        self.last_in_region = {state.num_cpus - 1}
        self.banks = [
            InterruptRegisters({irq.intid: irq for irq in pe.private}, on_change)
            for pe in state.cpus
        ]

    @property
    def size(self) -> int:
        """Bytes of guest-physical space all the redistributors occupy."""
        return self.state.num_cpus * STRIDE

    def fault(self, vm: Any, fault: MemoryFault, cookie: tuple[int, int]) -> FaultResult:
        """Fault callback of a redistributor region's reservation.

        The cookie is (the region's base, the PE whose redistributor comes first in it).
        """
        del vm
        base, first_cpu = cookie
        index, frame_offset = divmod(fault.address - base, STRIDE)
        cpu = first_cpu + index
        if cpu >= self.state.num_cpus:
            return FaultResult.ERROR  # past every redistributor (a reservation too large)

        def read32(offset: int) -> int:
            return self.read32(cpu, offset)

        def write32(offset: int, value: int, mask: int) -> None:
            self.write32(cpu, offset, value, mask)

        return serve_fault(fault, frame_offset, read32, write32)

    def typer(self, cpu: int) -> int:
        """GICR_TYPER of ``cpu``'s redistributor (64 bits)."""
        value = self.state.cpus[cpu].affinity << TYPER_AFFINITY_SHIFT
        value |= cpu << TYPER_PROCESSOR_NUMBER_SHIFT
        if cpu in self.last_in_region:
            value |= TYPER_LAST
        return value

    def read32(self, cpu: int, offset: int) -> int:
        """A 32-bit read at ``offset`` in ``cpu``'s RD_base + SGI_base pair."""
        if offset >= FRAME_SIZE:
            bank = self.banks[cpu]
            sgi_offset = offset - FRAME_SIZE
            return bank.read32(sgi_offset) if bank.claims(sgi_offset) else 0
        if offset == GICR_IIDR:
            return IIDR
        if offset in (GICR_TYPER, GICR_TYPER + 4):
            return self.typer(cpu) >> (8 * (offset - GICR_TYPER)) & 0xFFFF_FFFF
        if offset == GICR_WAKER:
            asleep = self.state.cpus[cpu].asleep
            return WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP if asleep else 0
        if offset == GICR_PIDR2:
            return PIDR2
        return 0  # GICR_CTLR (no LPIs, writes complete at once), STATUSR, reserved

    def write32(self, cpu: int, offset: int, value: int, mask: int) -> None:
        if offset >= FRAME_SIZE:
            bank = self.banks[cpu]
            sgi_offset = offset - FRAME_SIZE
            if bank.claims(sgi_offset):
                bank.write32(sgi_offset, value, mask)
        elif offset == GICR_WAKER and mask & WAKER_PROCESSOR_SLEEP:
            self.state.cpus[cpu].asleep = bool(value & WAKER_PROCESSOR_SLEEP)
            self._on_change()
