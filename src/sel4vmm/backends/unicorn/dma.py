"""A VMM-emulated DMA engine: it copies *physical* memory, as bus-master hardware does.

The guest programs it with addresses it believes are physical (its guest-physical
addresses).  Without an SMMU nothing translates them, so the engine reads and writes
:attr:`PhysicalMemory <sel4vmm.sel4.physmem.PhysicalMemory>` at exactly those addresses.
The copy is therefore right only when guest RAM is mapped 1:1 (IPA == PA): the reason the
CAmkES VM configuration offers ``map_one_to_one`` for guests that drive DMA-capable
passthrough devices (seed 000).  With RAM from pools the copy lands somewhere else and the
``dma`` test guest detects it.

Registers (32-bit, offsets from the device base): ``SRC_LO/HI`` 0x00/0x04, ``DST_LO/HI``
0x08/0x0C, ``LEN`` 0x10, ``CTRL`` 0x14 (write 1 to start; the copy completes at once),
``STATUS`` 0x18 (bit 0 done, bit 1 error: an address outside the board's memory).
"""

from __future__ import annotations

from typing import Any

from sel4vmm.errors import Sel4VmmError
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.sel4.physmem import PhysicalMemory

DMA_SRC_LO = 0x00
DMA_SRC_HI = 0x04
DMA_DST_LO = 0x08
DMA_DST_HI = 0x0C
DMA_LEN = 0x10
DMA_CTRL = 0x14
DMA_STATUS = 0x18
CTRL_START = 1
STATUS_DONE = 1
STATUS_ERROR = 2
#: The register window the board reserves for the engine.
DMA_FRAME_SIZE = 0x1000
#: The largest single transfer; bigger lengths are refused with STATUS_ERROR.
MAX_TRANSFER = 1 << 24


class DmaEngine:
    """A memory-to-memory copy engine behind a fault-callback reservation."""

    def __init__(self, physmem: PhysicalMemory) -> None:
        self._physmem = physmem
        self._registers = dict.fromkeys(
            (DMA_SRC_LO, DMA_SRC_HI, DMA_DST_LO, DMA_DST_HI, DMA_LEN), 0
        )
        self.status = 0
        self.transfers = 0

    def register_fault(self, vm: Any, fault: MemoryFault, base: int) -> FaultResult:
        """Fault callback of the engine's reservation (cookie: its guest address)."""
        del vm
        offset = fault.address - base
        if fault.width != 4 or offset & 3:
            return FaultResult.UNHANDLED  # the registers are 32-bit only
        if fault.is_write:
            self.write(offset, fault.value)
        else:
            fault.reply(self.read(offset))
        return FaultResult.HANDLED

    def read(self, offset: int) -> int:
        if offset == DMA_STATUS:
            return self.status
        return self._registers.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        if offset in self._registers:
            self._registers[offset] = value & 0xFFFF_FFFF
        elif offset == DMA_CTRL and value & CTRL_START:
            self._transfer()

    def _transfer(self) -> None:
        source = self._registers[DMA_SRC_HI] << 32 | self._registers[DMA_SRC_LO]
        destination = self._registers[DMA_DST_HI] << 32 | self._registers[DMA_DST_LO]
        length = self._registers[DMA_LEN]
        if length > MAX_TRANSFER:
            self.status = STATUS_DONE | STATUS_ERROR
            return
        try:
            # No translation: these are bus (physical) addresses, whatever the guest meant.
            data = bytes(self._physmem.view(source, length))
            self._physmem.view(destination, length)[:] = data
        except Sel4VmmError:
            self.status = STATUS_DONE | STATUS_ERROR
            return
        self.transfers += 1
        self.status = STATUS_DONE
