"""The GICv2 virtual CPU interface (GICV): list registers presenting virtual interrupts.

This is the hardware half of the GICv2 split :mod:`sel4vmm.devices.gicv2` describes: the board
maps the interface straight into the guest (a passthrough), so the guest's CPU-interface accesses
never fault into the VMM; the VMM only fills its list registers (``GICH_LR``) and empties
them on EOI.  The interrupt state it acknowledges and completes lives in its distributor
(:class:`CpuInterfaceOwner`), which banks SGIs and PPIs per vCPU.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

#: CPU interface register offsets (ARM IHI 0048B, table 4-2).
GICC_CTLR = 0x00
GICC_PMR = 0x04
GICC_BPR = 0x08
GICC_IAR = 0x0C
GICC_EOIR = 0x10
GICC_RPR = 0x14
GICC_HPPIR = 0x18
GICC_IIDR = 0xFC
GICC_DIR = 0x1000

SPURIOUS_INTID = 1023
NUM_SGIS = 16

_CPU_IIDR = 0x0202143B


class ListRegisterState(Enum):
    INVALID = "invalid"
    PENDING = "pending"
    ACTIVE = "active"
    PENDING_ACTIVE = "pending+active"


@dataclass
class ListRegister:
    """One GICH_LR: which virtual interrupt, its priority and its state."""

    intid: int = 0
    priority: int = 0
    state: ListRegisterState = ListRegisterState.INVALID
    #: Priority drop done (EOIR with EOImode=1) but not yet deactivated (DIR).
    dropped: bool = False
    #: For an SGI, the CPU that sent it (GICH_LR.CPUID, reported in GICC_IAR[12:10]).
    source: int = 0


class InterruptState:
    """Enable, pending, active and priority of a range of interrupts (one bank)."""

    def __init__(self, count: int) -> None:
        self.enabled = [False] * count
        self.pending = [False] * count
        self.active = [False] * count
        self.priority = [0] * count
        #: The CPU that sent each pending SGI (GICD_SPENDSGIRn has a bit per sender).
        self.source = [0] * count


class CpuInterfaceOwner(Protocol):
    """What a virtual CPU interface needs from its distributor."""

    def state(self, intid: int, cpu: int = 0) -> InterruptState: ...

    def complete(self, lr: ListRegister, cpu: int = 0) -> None: ...


class VirtualCpuInterface:
    """The GICV frame one vCPU uses as its GIC CPU interface, backed by its list registers."""

    def __init__(
        self, vgic: CpuInterfaceOwner, index: int = 0, num_list_registers: int = 4
    ) -> None:
        self._vgic = vgic
        self.index = index
        self.list_registers = [ListRegister() for _ in range(num_list_registers)]
        #: Interrupts waiting for a free list register, oldest first: (intid, SGI source).
        self.overflow: deque[tuple[int, int]] = deque()
        self.control = 0
        self.priority_mask = 0
        self.binary_point = 2
        self.acknowledged = 0

    @property
    def enabled(self) -> bool:
        return bool(self.control & 0b11)

    def _running_priority(self) -> int:
        running = 0x100  # idle
        for lr in self.list_registers:
            if lr.state in (ListRegisterState.ACTIVE, ListRegisterState.PENDING_ACTIVE) and (
                not lr.dropped
            ):
                running = min(running, lr.priority)
        return running

    def _highest_pending(self) -> ListRegister | None:
        best: ListRegister | None = None
        for lr in self.list_registers:
            if lr.state is ListRegisterState.PENDING and (
                best is None or lr.priority < best.priority
            ):
                best = lr
        return best

    def irq_line(self) -> bool:
        """Whether the virtual IRQ signal to the vCPU is asserted."""
        if not self.enabled:
            return False
        lr = self._highest_pending()
        return (
            lr is not None
            and lr.priority < self.priority_mask
            and lr.priority < self._running_priority()
        )

    def clear_pending(self, intid: int) -> None:
        """ICPENDR: drop ``intid`` from the queue and the list registers' pending state."""
        for queued in [q for q in self.overflow if q[0] == intid]:
            self.overflow.remove(queued)
        for lr in self.list_registers:
            if lr.intid == intid and lr.state is ListRegisterState.PENDING:
                lr.state = ListRegisterState.INVALID
            elif lr.intid == intid and lr.state is ListRegisterState.PENDING_ACTIVE:
                lr.state = ListRegisterState.ACTIVE

    def read(self, offset: int, size: int) -> int:
        del size
        if offset == GICC_CTLR:
            return self.control
        if offset == GICC_PMR:
            return self.priority_mask
        if offset == GICC_BPR:
            return self.binary_point
        if offset == GICC_IAR:
            return self._acknowledge()
        if offset == GICC_RPR:
            running = self._running_priority()
            return 0xFF if running == 0x100 else running
        if offset == GICC_HPPIR:
            lr = self._highest_pending()
            return SPURIOUS_INTID if lr is None else lr.intid
        if offset == GICC_IIDR:
            return _CPU_IIDR
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        del size
        if offset == GICC_CTLR:
            self.control = value & 0x3FF
        elif offset == GICC_PMR:
            self.priority_mask = value & 0xFF
        elif offset == GICC_BPR:
            self.binary_point = value & 0x7
        elif offset == GICC_EOIR:
            self._end_of_interrupt(value & 0x3FF, deactivate=not self.control & (1 << 9))
        elif offset == GICC_DIR:
            self._deactivate(value & 0x3FF)

    def _acknowledge(self) -> int:
        if not self.irq_line():
            return SPURIOUS_INTID
        lr = self._highest_pending()
        assert lr is not None  # irq_line() said there is one
        lr.state = ListRegisterState.ACTIVE
        state = self._vgic.state(lr.intid, self.index)
        state.pending[lr.intid] = False
        state.active[lr.intid] = True
        self.acknowledged += 1
        return lr.intid | (lr.source << 10 if lr.intid < NUM_SGIS else 0)

    def _end_of_interrupt(self, intid: int, *, deactivate: bool) -> None:
        for lr in self.list_registers:
            if lr.intid == intid and lr.state is ListRegisterState.ACTIVE and not lr.dropped:
                if deactivate:
                    self._vgic.complete(lr, self.index)
                else:
                    lr.dropped = True
                return

    def _deactivate(self, intid: int) -> None:
        for lr in self.list_registers:
            if lr.intid == intid and lr.state is ListRegisterState.ACTIVE:
                self._vgic.complete(lr, self.index)
                return
