"""The state a GICv3 keeps per interrupt and per CPU interface, and who gets what next.

Every other module of the model (distributor, redistributors, CPU interface) only reads and
changes this state; the rules that decide which interrupt a CPU is offered live here once:

* an interrupt is *pending* when its pending latch is set (an edge, a ``GICD_ISPENDR`` write,
  an SGI) or, if it is level-sensitive, while its input line is asserted (IHI 0069, the
  interrupt lifecycle);
* SGIs and PPIs (INTID 0-31) exist once per CPU (the redistributor's bank), SPIs once;
* an SPI goes to the CPU whose affinity ``GICD_IROUTER`` names, or with
  ``Interrupt_Routing_Mode`` = 1 to one participating CPU (IHI 0069, GICD_IROUTER<n>): here the
  lowest-numbered CPU whose redistributor is awake and whose ``ICC_IGRPEN1_EL1`` is set;
* a CPU is signalled the highest-priority (lowest value, then lowest INTID) pending, enabled,
  inactive Group 1 interrupt when its priority is below ``ICC_PMR_EL1`` and its group
  priority below the running priority (IHI 0069, interrupt prioritization and preemption).

The model has one Security state (``GICD_CTLR.DS`` = 1, as a guest's GIC under KVM or
libvmm), affinity routing always on, 5 priority bits and 16 INTID bits, no LPIs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: INTIDs 0-15 are SGIs, 16-31 PPIs, 32-1019 SPIs; 1020-1023 are special.
NUM_SGIS = 16
NUM_PRIVATE = 32
MAX_SPI_INTID = 1019
SPURIOUS_INTID = 1023
#: Implemented priority bits (ICC_CTLR_EL1.PRIbits + 1): priorities step by 8.
PRIORITY_BITS = 5
PRIORITY_MASK = (0xFF << (8 - PRIORITY_BITS)) & 0xFF
#: The running priority of an idle CPU interface: lower than any interrupt's.
IDLE_PRIORITY = 0x100
#: ICC_BPR1_EL1's smallest value: one more than ICC_BPR0_EL1's, which is 7 - PRIbits
#: (IHI 0069H, ICC_BPR0_EL1 and ICC_BPR1_EL1); smaller writes set it to this.
MIN_BINARY_POINT_1 = 8 - PRIORITY_BITS
#: GICD_IROUTER<n>.Interrupt_Routing_Mode: 1 = any participating PE ("1 of N").
IROUTER_ANY = 1 << 31
#: Affinity fields of GICD_IROUTER<n> and ICC_SGI1R_EL1-style values (Aff3 at 39:32).
IROUTER_AFFINITY_MASK = 0xFF_00FF_FFFF


def affinity_of_router(router: int) -> int:
    """GICD_IROUTER's Aff3.Aff2.Aff1.Aff0 packed as GICR_TYPER.Affinity_Value packs them."""
    return (router >> 32 & 0xFF) << 24 | router & 0xFF_FFFF


@dataclass(slots=True)
class Interrupt:
    """One interrupt's state (one per CPU for SGIs and PPIs)."""

    intid: int
    enabled: bool = False
    latched: bool = False
    #: The input line, for level-sensitive interrupts driven by a device.
    level: bool = False
    active: bool = False
    priority: int = 0
    group1: bool = False
    edge: bool = False
    #: GICD_IROUTER<n> (SPIs only).
    router: int = 0

    @property
    def pending(self) -> bool:
        return self.latched or (self.level and not self.edge)


@dataclass(slots=True)
class CpuState:
    """One PE's redistributor and CPU-interface state."""

    index: int
    #: Aff3.Aff2.Aff1.Aff0 as GICR_TYPER[63:32] packs them (Aff3 in bits 31:24).
    affinity: int
    private: list[Interrupt] = field(default_factory=list)
    #: GICR_WAKER.ProcessorSleep: the redistributor starts asleep.
    asleep: bool = True
    priority_mask: int = 0
    binary_point: int = MIN_BINARY_POINT_1
    binary_point0: int = MIN_BINARY_POINT_1 - 1
    group1_enabled: bool = False
    group0_enabled: bool = False
    #: ICC_CTLR_EL1.EOImode: 1 = EOIR only drops priority, DIR deactivates.
    eoi_mode: bool = False
    cbpr: bool = False
    #: Acknowledged interrupts whose priority is not yet dropped: (intid, priority).
    active_priorities: list[tuple[int, int]] = field(default_factory=list)


class Gicv3State:
    """All interrupts of one GICv3 and all its CPUs."""

    def __init__(self, num_cpus: int, num_spis: int, affinities: list[int]) -> None:
        self.num_cpus = num_cpus
        #: Number of INTIDs the distributor implements (32 + SPIs, a multiple of 32).
        self.num_lines = NUM_PRIVATE + num_spis
        self.group0_enabled = False
        self.group1_enabled = False
        self.cpus = [CpuState(i, affinities[i]) for i in range(num_cpus)]
        for cpu in self.cpus:
            cpu.private = [Interrupt(i, edge=i < NUM_SGIS) for i in range(NUM_PRIVATE)]
        self.spis = [Interrupt(i) for i in range(NUM_PRIVATE, self.num_lines)]

    def interrupt(self, intid: int, cpu: int) -> Interrupt:
        """The state ``intid`` has for CPU ``cpu`` (SPIs are the same for every CPU)."""
        if intid < NUM_PRIVATE:
            return self.cpus[cpu].private[intid]
        return self.spis[intid - NUM_PRIVATE]

    def cpu_by_affinity(self, affinity: int) -> int | None:
        for cpu in self.cpus:
            if cpu.affinity == affinity:
                return cpu.index
        return None

    def spi_target(self, irq: Interrupt) -> int | None:
        """The CPU an SPI is delivered to now, or None (nobody matches: it waits)."""
        if irq.router & IROUTER_ANY:
            for cpu in self.cpus:
                if not cpu.asleep and cpu.group1_enabled:
                    return cpu.index
            return None
        return self.cpu_by_affinity(affinity_of_router(irq.router))

    def highest_pending(self, cpu: int) -> Interrupt | None:
        """The highest-priority Group 1 interrupt that could be signalled to ``cpu``,
        ignoring the priority mask and the running priority (ICC_HPPIR1_EL1's view)."""
        if not self.group1_enabled:
            return None
        best: Interrupt | None = None
        for irq in (*self.cpus[cpu].private, *self.spis):
            eligible = irq.enabled and irq.group1 and not irq.active and irq.pending
            if not eligible or (best is not None and irq.priority >= best.priority):
                continue
            # Routing is looked at last: it is the dearest test and few SPIs get here.
            if irq.intid < NUM_PRIVATE or self.spi_target(irq) == cpu:
                best = irq
        return best

    def group_priority(self, cpu: int, priority: int) -> int:
        """The part of ``priority`` that decides preemption (ICC_BPR1_EL1)."""
        if priority >= IDLE_PRIORITY:
            return priority
        state = self.cpus[cpu]
        # ICC_CTLR_EL1.CBPR: ICC_BPR0_EL1 decides preemption for Group 1 as well.
        point = state.binary_point0 if state.cbpr else state.binary_point
        return priority & (0xFF << point) & 0xFF

    def running_priority(self, cpu: int) -> int:
        priorities = self.cpus[cpu].active_priorities
        if not priorities:
            return IDLE_PRIORITY
        return min(self.group_priority(cpu, p) for _, p in priorities)

    def signalled(self, cpu: int) -> Interrupt | None:
        """What ``cpu`` would acknowledge now: the highest pending interrupt if it passes
        ICC_IGRPEN1_EL1, the priority mask and preemption; else None."""
        state = self.cpus[cpu]
        if not state.group1_enabled:
            return None
        irq = self.highest_pending(cpu)
        if irq is None or irq.priority >= state.priority_mask:
            return None
        if self.group_priority(cpu, irq.priority) >= self.running_priority(cpu):
            return None
        return irq

    def acknowledge(self, cpu: int) -> int:
        """ICC_IAR1_EL1: make the signalled interrupt active, or answer 1023."""
        irq = self.signalled(cpu)
        if irq is None:
            return SPURIOUS_INTID
        irq.latched = False
        irq.active = True
        self.cpus[cpu].active_priorities.append((irq.intid, irq.priority))
        return irq.intid

    def drop_priority(self, cpu: int, intid: int) -> bool:
        """The priority drop of an EOI: forget the newest acknowledgement of ``intid``."""
        priorities = self.cpus[cpu].active_priorities
        for index in range(len(priorities) - 1, -1, -1):
            if priorities[index][0] == intid:
                del priorities[index]
                return True
        return False

    def deactivate(self, cpu: int, intid: int) -> None:
        if intid < self.num_lines:
            self.interrupt(intid, cpu).active = False
