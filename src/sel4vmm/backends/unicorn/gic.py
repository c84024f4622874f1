"""The virtual GICv2: a distributor the VMM emulates and a CPU interface with list registers.

This is the split seL4 VMMs use on GICv2 (libvmm ``src/arch/aarch64/vgic``, libsel4vm's
``vgic``): the guest's accesses to the *distributor* fault into the VMM through a
fault-callback reservation (:meth:`Vgic.distributor_fault`), while the guest's *CPU
interface* is the hardware's virtual CPU interface (GICV), mapped straight into the guest.
The VMM injects an interrupt by writing it into a *list register*; the virtual CPU interface
presents it to the guest (IAR), and on EOI the list register empties and the VMM refills it
from its overflow queue (the maintenance interrupt).

:class:`VirtualCpuInterface` is that hardware here: the board maps it like a passthrough
device, so guest accesses to it never go through the VMM's fault path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

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
NUM_PRIVATE = 32
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


def _bit_word(bits: list[bool], word: int) -> int:
    value = 0
    for i in range(32):
        index = word * 32 + i
        if index < len(bits) and bits[index]:
            value |= 1 << i
    return value


class Vgic:
    """Distributor state, list registers, and the VMM's injection queue for one vCPU."""

    def __init__(
        self,
        num_lines: int = DEFAULT_NUM_LINES,
        num_list_registers: int = DEFAULT_LIST_REGISTERS,
        on_eoi: Callable[[int], None] | None = None,
        on_signal: Callable[[], None] | None = None,
    ) -> None:
        if num_lines % 32 or not NUM_PRIVATE < num_lines <= 1020:
            raise ValueError("a GICv2 has a multiple of 32 lines, between 64 and 1020")
        self.num_lines = num_lines
        self.enabled = False
        self.irq_enabled = [False] * num_lines
        self.pending = [False] * num_lines
        self.active = [False] * num_lines
        self.group = [False] * num_lines
        self.priority = [0] * num_lines
        #: One vCPU: every interrupt targets CPU interface 0.
        self.targets = [0x01] * num_lines
        #: Two configuration bits per interrupt; SGIs are edge-triggered, read-only.
        self.config = [0b10 if i < NUM_SGIS else 0 for i in range(num_lines)]
        for sgi in range(NUM_SGIS):
            self.irq_enabled[sgi] = True  # SGIs cannot be disabled (libvmm does the same)
        self.list_registers = [ListRegister() for _ in range(num_list_registers)]
        #: Interrupts waiting for a free list register, oldest first.
        self.overflow: deque[int] = deque()
        self.cpu = VirtualCpuInterface(self)
        self._on_eoi = on_eoi
        self._on_signal = on_signal
        self.injected = 0

    # -- the VMM's side ------------------------------------------------------------------
    def inject(self, intid: int) -> bool:
        """Make ``intid`` pending for the guest (``vgic_inject_irq``).

        Refused (False), as in libvmm, while the distributor or the interrupt is disabled:
        a level-triggered source is asked again later, an edge is lost as on hardware.
        """
        if not 0 <= intid < self.num_lines:
            raise ValueError(f"interrupt {intid} is outside the distributor's {self.num_lines}")
        if not self.enabled or not self.irq_enabled[intid]:
            return False
        if self.pending[intid]:
            return True
        self.pending[intid] = True
        self.injected += 1
        self.overflow.append(intid)
        self._fill_list_registers()
        return True

    def is_in_flight(self, intid: int) -> bool:
        """Pending or active: a level source must not be injected again yet."""
        return self.pending[intid] or self.active[intid]

    def _fill_list_registers(self) -> None:
        loaded = False
        for lr in self.list_registers:
            if not self.overflow:
                break
            if lr.state is ListRegisterState.INVALID:
                intid = self.overflow.popleft()
                lr.intid = intid
                lr.priority = self.priority[intid]
                lr.state = ListRegisterState.PENDING
                lr.dropped = False
                loaded = True
        if loaded and self._on_signal is not None:
            self._on_signal()

    def complete(self, lr: ListRegister) -> None:
        """Deactivate a list register: the maintenance path of a real vGIC."""
        intid = lr.intid
        lr.state = ListRegisterState.INVALID
        lr.dropped = False
        self.active[intid] = False
        self._fill_list_registers()
        if self._on_eoi is not None:
            self._on_eoi(intid)

    # -- the distributor, through the fault path ------------------------------------------
    def distributor_fault(self, vm: Any, fault: MemoryFault, base: int) -> FaultResult:
        """Fault callback of the distributor reservation (cookie: its guest address)."""
        del vm
        offset = fault.address - base
        if fault.is_write:
            self.write_distributor(offset, fault.width, fault.value)
        else:
            fault.reply(self.read_distributor(offset, fault.width))
        return FaultResult.HANDLED

    def read_distributor(self, offset: int, width: int) -> int:
        """A guest load from the distributor; reserved and unknown registers read zero."""
        shift = 8 * (offset & 3)
        word = self._read_distributor_word(offset & ~3)
        return (word >> shift) & ((1 << (8 * width)) - 1)

    def _read_distributor_word(self, offset: int) -> int:
        lines = self.num_lines
        if offset == GICD_CTLR:
            return int(self.enabled)
        if offset == GICD_TYPER:
            return lines // 32 - 1  # one CPU (CPUNumber 0), no security extensions
        if offset == GICD_IIDR:
            return _DIST_IIDR
        bitmaps: tuple[tuple[int, list[bool]], ...] = (
            (GICD_IGROUPR, self.group),
            (GICD_ISENABLER, self.irq_enabled),
            (GICD_ICENABLER, self.irq_enabled),
            (GICD_ISPENDR, self.pending),
            (GICD_ICPENDR, self.pending),
            (GICD_ISACTIVER, self.active),
            (GICD_ICACTIVER, self.active),
        )
        for base, bits in bitmaps:
            if base <= offset < base + 0x80:
                return _bit_word(bits, (offset - base) // 4)
        if GICD_IPRIORITYR <= offset < GICD_IPRIORITYR + lines:
            first = offset - GICD_IPRIORITYR
            return sum(self.priority[first + i] << (8 * i) for i in range(4))
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
            return sum(int(self.pending[first + i]) << (8 * i) for i in range(4))
        return _DIST_ID_REGISTERS.get(offset, 0)

    def write_distributor(self, offset: int, width: int, value: int) -> None:
        """A guest store to the distributor; read-only and unknown registers ignore it."""
        shift = 8 * (offset & 3)
        byte_mask = ((1 << (8 * width)) - 1) << shift
        self._write_distributor_word(offset & ~3, (value << shift) & byte_mask, byte_mask)

    def _write_distributor_word(self, offset: int, value: int, mask: int) -> None:
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
        set_clear: tuple[tuple[int, bool, Callable[[int, bool], None]], ...] = (
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
                        apply(first + i, state)
                return
        if GICD_IPRIORITYR <= offset < GICD_IPRIORITYR + lines:
            first = offset - GICD_IPRIORITYR
            for i in range(4):
                if mask >> (8 * i) & 0xFF:
                    self.priority[first + i] = value >> (8 * i) & 0xFF
            return
        if GICD_ITARGETSR + NUM_PRIVATE <= offset < GICD_ITARGETSR + lines:
            first = offset - GICD_ITARGETSR
            for i in range(4):
                if mask >> (8 * i) & 0xFF:
                    self.targets[first + i] = value >> (8 * i) & 0xFF
            return
        if GICD_ICFGR + 4 <= offset < GICD_ICFGR + lines // 4:  # ICFGR0 (SGIs) read-only
            first = (offset - GICD_ICFGR) * 4
            for i in range(16):
                if mask >> (2 * i) & 0b11:
                    self.config[first + i] = value >> (2 * i) & 0b10
            return
        if offset == GICD_SGIR:
            self._send_sgi(value)

    def _set_enabled(self, intid: int, enable: bool) -> None:
        if intid < NUM_SGIS and not enable:
            return  # SGIs cannot be disabled
        self.irq_enabled[intid] = enable

    def _set_pending(self, intid: int, pending: bool) -> None:
        if pending:
            self.inject(intid)
            return
        self.pending[intid] = False
        if intid in self.overflow:
            self.overflow.remove(intid)
        for lr in self.list_registers:
            if lr.intid == intid and lr.state is ListRegisterState.PENDING:
                lr.state = ListRegisterState.INVALID
            elif lr.intid == intid and lr.state is ListRegisterState.PENDING_ACTIVE:
                lr.state = ListRegisterState.ACTIVE

    def _set_active(self, intid: int, active: bool) -> None:
        self.active[intid] = active
        if not active:
            for lr in self.list_registers:
                if lr.intid == intid and lr.state is ListRegisterState.ACTIVE:
                    self.complete(lr)

    def _send_sgi(self, value: int) -> None:
        sgi = value & 0xF
        target_filter = value >> 24 & 0b11
        target_list = value >> 16 & 0xFF
        # One vCPU (interface 0): "to the list" reaches it if bit 0 is set, "to others"
        # reaches nobody, "to self" reaches it.
        if (target_filter == 0 and target_list & 1) or target_filter == 2:
            self.inject(sgi)


class VirtualCpuInterface:
    """The GICV frame the guest uses as its GIC CPU interface, backed by the list registers."""

    def __init__(self, vgic: Vgic) -> None:
        self._vgic = vgic
        self.control = 0
        self.priority_mask = 0
        self.binary_point = 2
        self.acknowledged = 0

    @property
    def enabled(self) -> bool:
        return bool(self.control & 0b11)

    def _running_priority(self) -> int:
        running = 0x100  # idle
        for lr in self._vgic.list_registers:
            if lr.state in (ListRegisterState.ACTIVE, ListRegisterState.PENDING_ACTIVE) and (
                not lr.dropped
            ):
                running = min(running, lr.priority)
        return running

    def _highest_pending(self) -> ListRegister | None:
        best: ListRegister | None = None
        for lr in self._vgic.list_registers:
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
        self._vgic.pending[lr.intid] = False
        self._vgic.active[lr.intid] = True
        self.acknowledged += 1
        return lr.intid

    def _end_of_interrupt(self, intid: int, *, deactivate: bool) -> None:
        for lr in self._vgic.list_registers:
            if lr.intid == intid and lr.state is ListRegisterState.ACTIVE and not lr.dropped:
                if deactivate:
                    self._vgic.complete(lr)
                else:
                    lr.dropped = True
                return

    def _deactivate(self, intid: int) -> None:
        for lr in self._vgic.list_registers:
            if lr.intid == intid and lr.state is ListRegisterState.ACTIVE:
                self._vgic.complete(lr)
                return
