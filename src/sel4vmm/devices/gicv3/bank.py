"""The per-interrupt registers the distributor and the SGI_base frame share.

``GICD_IGROUPR<n>`` ... ``GICD_ICFGR<n>`` and ``GICR_IGROUPR0`` ... ``GICR_ICFGR1`` have the
same offsets and bit layouts (IHI 0069, the GICD_* and GICR_* register descriptions); only which
interrupts they reach differs: with affinity routing the distributor's words for INTIDs 0-31 are
RAZ/WI and the redistributor's SGI_base frame serves them for its own PE.
:class:`InterruptRegisters` is that layout over a lookup from INTID to state (None: RAZ/WI).
"""

from __future__ import annotations

from collections.abc import Callable

from sel4vmm.devices.gicv3.registers import bits_of
from sel4vmm.devices.gicv3.state import NUM_SGIS, PRIORITY_MASK, Interrupt

IGROUPR = 0x080
ISENABLER = 0x100
ICENABLER = 0x180
ISPENDR = 0x200
ICPENDR = 0x280
ISACTIVER = 0x300
ICACTIVER = 0x380
IPRIORITYR = 0x400
ICFGR = 0xC00
#: End of each array: 1024 INTIDs at one bit, one byte and two bits each.
_BIT_ARRAY_END = 0x80
_PRIORITY_END = 0x400
_CONFIG_END = 0x100

#: INTIDs a bank register array spans (one bit each in IGROUPR ... ICACTIVER).
INTID_SPAN = 1024


#: The state each bit array shows: IGROUPR, IS/ICENABLER, IS/ICPENDR, IS/ICACTIVER.
_ARRAY_ATTRIBUTES = ("group1", "enabled", "enabled", "pending", "pending", "active", "active")


class InterruptRegisters:
    """Group, enable, pending, active, priority and configuration registers.

    ``interrupts`` maps INTID to the state a register bit or byte reaches, None where the
    register is RAZ/WI; it is copied into a table of all 1024 INTIDs so a register word is
    one slice (a guest reads these on every interrupt).
    """

    def __init__(self, interrupts: dict[int, Interrupt], on_change: Callable[[], None]) -> None:
        self._table: list[Interrupt | None] = [interrupts.get(i) for i in range(INTID_SPAN)]
        #: Called after any write that may change what a CPU is signalled.
        self._on_change = on_change

    def claims(self, offset: int) -> bool:
        return (
            IGROUPR <= offset < ICACTIVER + _BIT_ARRAY_END
            or IPRIORITYR <= offset < IPRIORITYR + _PRIORITY_END
            or ICFGR <= offset < ICFGR + _CONFIG_END
        )

    def _irqs(self, first: int, count: int) -> list[Interrupt | None]:
        return self._table[first : first + count]

    def read32(self, offset: int) -> int:
        if offset >= ICFGR:
            first = (offset - ICFGR) * 4
            value = 0
            for i, irq in enumerate(self._irqs(first, 16)):
                if irq is not None and irq.edge:
                    value |= 0b10 << (2 * i)
            return value
        if offset >= IPRIORITYR:
            first = offset - IPRIORITYR
            return sum(
                irq.priority << (8 * i)
                for i, irq in enumerate(self._irqs(first, 4))
                if irq is not None
            )
        array = (offset - IGROUPR) // _BIT_ARRAY_END
        first = (offset % _BIT_ARRAY_END) * 8
        name = _ARRAY_ATTRIBUTES[array]
        return bits_of([irq is not None and getattr(irq, name) for irq in self._irqs(first, 32)])

    def write32(self, offset: int, value: int, mask: int) -> None:
        if offset >= ICFGR:
            first = (offset - ICFGR) * 4
            for i, irq in enumerate(self._irqs(first, 16)):
                # SGIs are always edge-triggered: GICR_ICFGR0 is read-only.
                if irq is not None and irq.intid >= NUM_SGIS and mask >> (2 * i) & 0b11:
                    irq.edge = bool(value >> (2 * i + 1) & 1)
        elif offset >= IPRIORITYR:
            first = offset - IPRIORITYR
            for i, irq in enumerate(self._irqs(first, 4)):
                if irq is not None and mask >> (8 * i) & 0xFF:
                    irq.priority = value >> (8 * i) & PRIORITY_MASK
        else:
            array = (offset - IGROUPR) // _BIT_ARRAY_END
            first = (offset % _BIT_ARRAY_END) * 8
            for i, irq in enumerate(self._irqs(first, 32)):
                if irq is None or not mask >> i & 1:
                    continue
                bit = bool(value >> i & 1)
                if array == 0:
                    irq.group1 = bit
                elif bit:
                    self._set_or_clear(irq, array)
        self._on_change()

    @staticmethod
    def _set_or_clear(irq: Interrupt, array: int) -> None:
        """A one written to a set (odd array) or clear (even array) register."""
        if array == 1:
            irq.enabled = True
        elif array == 2:
            irq.enabled = False
        elif array == 3:
            irq.latched = True
        elif array == 4:
            # Clears the latch only: a level-sensitive interrupt stays pending while
            # its input is asserted (IHI 0069, the interrupt lifecycle).
            irq.latched = False
        elif array == 5:
            irq.active = True
        else:
            irq.active = False
