"""The GICv2 distributor the VMM emulates (:class:`Vgic`), driving one virtual CPU interface
per vCPU (:mod:`.cpu_interface`).

The guest's distributor accesses fault into the VMM (:meth:`Vgic.distributor_fault`); the
distributor banks SGIs and PPIs per vCPU and routes SPIs through ``GICD_ITARGETSR`` (ARM IHI
0048B 3.3).  The package docstring (:mod:`sel4vmm.devices.gicv2`) describes the split.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from sel4vmm.devices.gicv2.cpu_interface import (
    NUM_SGIS,
    InterruptState,
    ListRegister,
    ListRegisterState,
    VirtualCpuInterface,
)
from sel4vmm.memory import FaultResult, MemoryFault

#: Distributor register offsets (ARM IHI 0048B, table 4-1).
GICD_CTLR = 0x000
GICD_TYPER = 0x004
GICD_IIDR = 0x008
GICD_IGROUPR = 0x080
GICD_ISENABLER = 0x100
GICD_ICENABLER = 0x180
GICD_ISPENDR = 0x200
GICD_ICPENDR = 0x280
GICD_ISACTIVER = 0x300
GICD_ICACTIVER = 0x380
GICD_IPRIORITYR = 0x400
GICD_ITARGETSR = 0x800
GICD_ICFGR = 0xC00
GICD_SGIR = 0xF00
GICD_CPENDSGIR = 0xF10
GICD_SPENDSGIR = 0xF20

#: CPU interface register offsets (ARM IHI 0048B, table 4-2); GICV has the same layout.
NUM_PRIVATE = 32
#: The most CPU interfaces a GICv2 distributor can serve (8-bit target masks).
MAX_CPUS = 8
#: Interrupt lines the virtual distributor implements (TYPER.ITLinesNumber = 3).
DEFAULT_NUM_LINES = 128
#: GIC-400 implementations have four list registers.
DEFAULT_LIST_REGISTERS = 4
#: Sizes of the distributor frame and of the CPU interface frames (GICC/GICV).
DISTRIBUTOR_FRAME_SIZE = 0x1000
CPU_INTERFACE_FRAME_SIZE = 0x2000

#: Identification registers of a GIC-400 (PIDR4..7, PIDR0..3, CIDR0..3 at 0xFD0..0xFFC).
_DIST_ID_REGISTERS = {
    0xFD0: 0x04,
    0xFD4: 0x00,
    0xFD8: 0x00,
    0xFDC: 0x00,
    0xFE0: 0x90,
    0xFE4: 0xB4,
    0xFE8: 0x2B,
    0xFEC: 0x00,
    0xFF0: 0x0D,
    0xFF4: 0xF0,
    0xFF8: 0x05,
    0xFFC: 0xB1,
}
#: GICD_IIDR / GICC_IIDR of a GIC-400 (ARM, revision 1, architecture v2).
_DIST_IIDR = 0x0200143B


def _bit_word(bits: list[bool], word: int) -> int:
    value = 0
    for i in range(32):
        index = word * 32 + i
        if index < len(bits) and bits[index]:
            value |= 1 << i
    return value


class Vgic:
    """Distributor state, one virtual CPU interface per vCPU, and the injection queues.

    ``on_signal(cpu)`` is called when an interrupt is loaded into CPU ``cpu``'s list
    registers (the VMM may have to stop a running vCPU to deliver it); ``on_eoi(intid)``
    when the guest deactivates one (a level source still asserted is injected again).
    """

    def __init__(
        self,
        num_lines: int = DEFAULT_NUM_LINES,
        num_list_registers: int = DEFAULT_LIST_REGISTERS,
        on_eoi: Callable[[int], None] | None = None,
        on_signal: Callable[[int], None] | None = None,
        num_cpus: int = 1,
    ) -> None:
        if num_lines % 32 or not NUM_PRIVATE < num_lines <= 1020:
            raise ValueError("a GICv2 has a multiple of 32 lines, between 64 and 1020")
        if not 1 <= num_cpus <= MAX_CPUS:
            raise ValueError(f"a GICv2 serves 1 to {MAX_CPUS} CPU interfaces")
        self.num_lines = num_lines
        self.num_cpus = num_cpus
        self.enabled = False
        #: SPIs (entries below 32 are unused: private interrupts live in ``banked``).
        self.shared = InterruptState(num_lines)
        #: SGIs and PPIs, one bank per CPU interface.
        self.banked = [InterruptState(NUM_PRIVATE) for _ in range(num_cpus)]
        self.group = [False] * num_lines
        #: SPI target masks; every SPI starts on CPU interface 0.
        self.targets = [0x01] * num_lines
        #: Two configuration bits per interrupt; SGIs are edge-triggered, read-only.
        self.config = [0b10 if i < NUM_SGIS else 0 for i in range(num_lines)]
        for bank in self.banked:
            for sgi in range(NUM_SGIS):
                bank.enabled[sgi] = True  # SGIs cannot be disabled (libvmm does the same)
        self.cpus = [VirtualCpuInterface(self, i, num_list_registers) for i in range(num_cpus)]
        #: Pending SPIs whose target mask names no CPU interface: they wait for one.
        self.unrouted: set[int] = set()
        self._on_eoi = on_eoi
        self._on_signal = on_signal
        self.injected = 0

    # -- CPU 0's view, which is the whole GIC with one vCPU -------------------------------
    @property
    def cpu(self) -> VirtualCpuInterface:
        return self.cpus[0]

    @property
    def list_registers(self) -> list[ListRegister]:
        return self.cpus[0].list_registers

    @property
    def overflow(self) -> deque[tuple[int, int]]:
        return self.cpus[0].overflow

    def _view(self, attribute: str, cpu: int = 0) -> list[Any]:
        bank: list[Any] = getattr(self.banked[cpu], attribute)
        shared: list[Any] = getattr(self.shared, attribute)
        return bank + shared[NUM_PRIVATE:]

    @property
    def pending(self) -> list[bool]:
        """CPU 0's pending bits (a copy: change state through the registers)."""
        return self._view("pending")

    @property
    def active(self) -> list[bool]:
        return self._view("active")

    @property
    def irq_enabled(self) -> list[bool]:
        return self._view("enabled")

    @property
    def priority(self) -> list[int]:
        return self._view("priority")

    def state(self, intid: int, cpu: int = 0) -> InterruptState:
        """The bank holding ``intid`` as CPU ``cpu`` sees it (private ones are banked)."""
        return self.banked[cpu] if intid < NUM_PRIVATE else self.shared

    # -- the VMM's side ------------------------------------------------------------------
    def inject(self, intid: int, cpu: int = 0, source: int = 0) -> bool:
        """Make ``intid`` pending for the guest (``vgic_inject_irq``).

        ``cpu`` picks the bank of a private interrupt (the vCPU whose timer fired, the
        SGI's target); an SPI goes where its target mask says.  Refused (False), as in
        libvmm, while the distributor or the interrupt is disabled: a level-triggered
        source is asked again later, an edge is lost as on hardware.
        """
        if not 0 <= intid < self.num_lines:
            raise ValueError(f"interrupt {intid} is outside the distributor's {self.num_lines}")
        if not 0 <= cpu < self.num_cpus:
            raise ValueError(f"CPU interface {cpu} does not exist ({self.num_cpus} vCPUs)")
        state = self.state(intid, cpu)
        if not self.enabled or not state.enabled[intid]:
            return False
        if state.pending[intid]:
            return True
        state.pending[intid] = True
        state.source[intid] = source
        self.injected += 1
        if intid >= NUM_PRIVATE:
            target = self._spi_target(intid)
            if target is None:
                self.unrouted.add(intid)
                return True
            cpu = target
        self.cpus[cpu].overflow.append((intid, source))
        self._fill_list_registers(cpu)
        return True

    def withdraw(self, intid: int, cpu: int = 0) -> None:
        """A level-sensitive source deasserted: its pending state goes, as hardware's does
        (ARM IHI 0048B 1.4.2); an active interrupt stays active until the guest's EOI."""
        self._set_pending(intid, False, cpu)

    def _spi_target(self, intid: int) -> int | None:
        mask = self.targets[intid] & ((1 << self.num_cpus) - 1)
        return (mask & -mask).bit_length() - 1 if mask else None

    def is_in_flight(self, intid: int, cpu: int = 0) -> bool:
        """Pending or active: a level source must not be injected again yet."""
        state = self.state(intid, cpu)
        return state.pending[intid] or state.active[intid]

    def _fill_list_registers(self, cpu: int) -> None:
        interface = self.cpus[cpu]
        loaded = False
        for lr in interface.list_registers:
            if not interface.overflow:
                break
            if lr.state is ListRegisterState.INVALID:
                intid, source = interface.overflow.popleft()
                lr.intid = intid
                lr.priority = self.state(intid, cpu).priority[intid]
                lr.state = ListRegisterState.PENDING
                lr.dropped = False
                lr.source = source
                loaded = True
        if loaded and self._on_signal is not None:
            self._on_signal(cpu)

    def complete(self, lr: ListRegister, cpu: int = 0) -> None:
        """Deactivate a list register: the maintenance path of a real vGIC."""
        intid = lr.intid
        lr.state = ListRegisterState.INVALID
        lr.dropped = False
        self.state(intid, cpu).active[intid] = False
        self._fill_list_registers(cpu)
        if self._on_eoi is not None:
            self._on_eoi(intid)

    # -- the distributor, through the fault path ------------------------------------------
    def distributor_fault(self, vm: Any, fault: MemoryFault, base: int) -> FaultResult:
        """Fault callback of the distributor reservation (cookie: its guest address).

        The fault's ``vcpu`` (anything with an ``index``) says whose bank is accessed.
        """
        del vm
        offset = fault.address - base
        cpu = getattr(fault.vcpu, "index", 0)
        if fault.is_write:
            self.write_distributor(offset, fault.width, fault.value, cpu)
        else:
            fault.reply(self.read_distributor(offset, fault.width, cpu))
        return FaultResult.HANDLED

    def read_distributor(self, offset: int, width: int, cpu: int = 0) -> int:
        """A guest load from the distributor; reserved and unknown registers read zero."""
        shift = 8 * (offset & 3)
        word = self._read_distributor_word(offset & ~3, cpu)
        return (word >> shift) & ((1 << (8 * width)) - 1)

    def _read_distributor_word(self, offset: int, cpu: int) -> int:
        lines = self.num_lines
        if offset == GICD_CTLR:
            return int(self.enabled)
        if offset == GICD_TYPER:
            # CPUNumber (bits 7:5) is the number of CPU interfaces minus one; no security.
            return (self.num_cpus - 1) << 5 | (lines // 32 - 1)
        if offset == GICD_IIDR:
            return _DIST_IIDR
        if GICD_IGROUPR <= offset < GICD_IGROUPR + 0x80:
            return _bit_word(self.group, (offset - GICD_IGROUPR) // 4)
        bitmaps = (
            (GICD_ISENABLER, "enabled"),
            (GICD_ICENABLER, "enabled"),
            (GICD_ISPENDR, "pending"),
            (GICD_ICPENDR, "pending"),
            (GICD_ISACTIVER, "active"),
            (GICD_ICACTIVER, "active"),
        )
        for base, attribute in bitmaps:
            if base <= offset < base + 0x80:
                word = (offset - base) // 4
                bank = self.banked[cpu] if word == 0 else self.shared
                return _bit_word(getattr(bank, attribute), word)
        if GICD_IPRIORITYR <= offset < GICD_IPRIORITYR + lines:
            first = offset - GICD_IPRIORITYR
            return sum(self.state(first + i, cpu).priority[first + i] << (8 * i) for i in range(4))
        if GICD_ITARGETSR <= offset < GICD_ITARGETSR + NUM_PRIVATE:
            return (1 << cpu) * 0x0101_0101  # private interrupts target the reader
        if GICD_ITARGETSR <= offset < GICD_ITARGETSR + lines:
            first = offset - GICD_ITARGETSR
            return sum(self.targets[first + i] << (8 * i) for i in range(4))
        if GICD_ICFGR <= offset < GICD_ICFGR + lines // 4:
            first = (offset - GICD_ICFGR) * 4
            return sum(self.config[first + i] << (2 * i) for i in range(16))
        if GICD_SPENDSGIR <= offset < GICD_SPENDSGIR + 16 or (
            GICD_CPENDSGIR <= offset < GICD_CPENDSGIR + 16
        ):
            base = GICD_SPENDSGIR if offset >= GICD_SPENDSGIR else GICD_CPENDSGIR
            first = offset - base
            bank = self.banked[cpu]
            return sum(
                int(bank.pending[first + i]) << bank.source[first + i] << (8 * i) for i in range(4)
            )
        return _DIST_ID_REGISTERS.get(offset, 0)

    def write_distributor(self, offset: int, width: int, value: int, cpu: int = 0) -> None:
        """A guest store to the distributor; read-only and unknown registers ignore it."""
        shift = 8 * (offset & 3)
        byte_mask = ((1 << (8 * width)) - 1) << shift
        self._write_distributor_word(offset & ~3, (value << shift) & byte_mask, byte_mask, cpu)

    def _write_distributor_word(self, offset: int, value: int, mask: int, cpu: int) -> None:
        lines = self.num_lines
        if offset == GICD_CTLR:
            self.enabled = bool(value & 1)
            return
        if GICD_IGROUPR <= offset < GICD_IGROUPR + 0x80:
            first = (offset - GICD_IGROUPR) * 8
            for i in range(32):
                if mask >> i & 1 and first + i < lines:
                    self.group[first + i] = bool(value >> i & 1)
            return
        set_clear: tuple[tuple[int, bool, Callable[[int, bool, int], None]], ...] = (
            (GICD_ISENABLER, True, self._set_enabled),
            (GICD_ICENABLER, False, self._set_enabled),
            (GICD_ISPENDR, True, self._set_pending),
            (GICD_ICPENDR, False, self._set_pending),
            (GICD_ISACTIVER, True, self._set_active),
            (GICD_ICACTIVER, False, self._set_active),
        )
        for base, state, apply in set_clear:
            if base <= offset < base + 0x80:
                first = (offset - base) * 8
                for i in range(32):
                    if (value & mask) >> i & 1 and first + i < lines:
                        apply(first + i, state, cpu)
                return
        if GICD_IPRIORITYR <= offset < GICD_IPRIORITYR + lines:
            first = offset - GICD_IPRIORITYR
            for i in range(4):
                if mask >> (8 * i) & 0xFF:
                    intid = first + i
                    self.state(intid, cpu).priority[intid] = value >> (8 * i) & 0xFF
            return
        if GICD_ITARGETSR + NUM_PRIVATE <= offset < GICD_ITARGETSR + lines:
            first = offset - GICD_ITARGETSR
            for i in range(4):
                if mask >> (8 * i) & 0xFF:
                    self.targets[first + i] = value >> (8 * i) & 0xFF
            self._route_waiting()
            return
        if GICD_ICFGR + 4 <= offset < GICD_ICFGR + lines // 4:  # ICFGR0 (SGIs) read-only
            first = (offset - GICD_ICFGR) * 4
            for i in range(16):
                if mask >> (2 * i) & 0b11:
                    self.config[first + i] = value >> (2 * i) & 0b10
            return
        if offset == GICD_SGIR:
            self.send_sgi(value, cpu)

    def _route_waiting(self) -> None:
        """Pending SPIs that had no target go to the CPU interface they now name."""
        for intid in sorted(self.unrouted):
            target = self._spi_target(intid)
            if target is not None:
                self.unrouted.discard(intid)
                self.cpus[target].overflow.append((intid, 0))
                self._fill_list_registers(target)

    def _set_enabled(self, intid: int, enable: bool, cpu: int) -> None:
        if intid < NUM_SGIS and not enable:
            return  # SGIs cannot be disabled
        self.state(intid, cpu).enabled[intid] = enable

    def _set_pending(self, intid: int, pending: bool, cpu: int) -> None:
        if pending:
            self.inject(intid, cpu, source=cpu)
            return
        self.state(intid, cpu).pending[intid] = False
        self.unrouted.discard(intid)
        interfaces = [self.cpus[cpu]] if intid < NUM_PRIVATE else self.cpus
        for interface in interfaces:
            interface.clear_pending(intid)

    def _set_active(self, intid: int, active: bool, cpu: int) -> None:
        self.state(intid, cpu).active[intid] = active
        if not active:
            interfaces = [self.cpus[cpu]] if intid < NUM_PRIVATE else self.cpus
            for interface in interfaces:
                for lr in interface.list_registers:
                    if lr.intid == intid and lr.state is ListRegisterState.ACTIVE:
                        self.complete(lr, interface.index)

    def send_sgi(self, value: int, sender: int = 0) -> None:
        """A ``GICD_SGIR`` write by CPU ``sender``: SGI ``value[3:0]`` to the CPUs chosen by
        the target list filter (0: the list in bits 23:16, 1: all but the sender, 2: the
        sender itself)."""
        sgi = value & 0xF
        target_filter = value >> 24 & 0b11
        if target_filter == 0:
            targets = value >> 16 & 0xFF
        elif target_filter == 1:
            targets = 0xFF & ~(1 << sender)
        elif target_filter == 2:
            targets = 1 << sender
        else:
            return  # reserved
        for cpu in range(self.num_cpus):
            if targets >> cpu & 1:
                self.inject(sgi, cpu, source=sender)
