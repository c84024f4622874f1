"""The physical-address DMA engine model, without a CPU."""

from __future__ import annotations

import pytest

from sel4vmm.devices.dma_engine import (
    DMA_CTRL,
    DMA_DST_LO,
    DMA_LEN,
    DMA_SRC_LO,
    DMA_STATUS,
    STATUS_DONE,
    STATUS_ERROR,
    DmaEngine,
)
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory


@pytest.fixture
def physmem() -> PhysicalMemory:
    return PhysicalMemory([MemoryRange(0x4000_0000, 0x10_0000, name="ram")])


def program(engine: DmaEngine, src: int, dst: int, length: int) -> None:
    base = 0x0B00_0000
    for offset, value in ((DMA_SRC_LO, src), (DMA_DST_LO, dst), (DMA_LEN, length)):
        fault = MemoryFault(base + offset, 4, True, value)
        assert engine.register_fault(None, fault, base) is FaultResult.HANDLED
        fault = MemoryFault(base + offset + 4, 4, True, value >> 32)
        if offset != DMA_LEN:
            engine.register_fault(None, fault, base)
    engine.register_fault(None, MemoryFault(base + DMA_CTRL, 4, True, 1), base)


def test_dma_copies_physical_memory_without_translation(physmem: PhysicalMemory) -> None:
    physmem.view(0x4000_1000, 16)[:] = bytes(range(16))
    engine = DmaEngine(physmem)
    program(engine, 0x4000_1000, 0x4000_2000, 16)
    assert engine.read(DMA_STATUS) == STATUS_DONE
    assert bytes(physmem.view(0x4000_2000, 16)) == bytes(range(16))


def test_dma_outside_the_board_reports_an_error(physmem: PhysicalMemory) -> None:
    engine = DmaEngine(physmem)
    program(engine, 0x1000, 0x4000_2000, 16)
    assert engine.read(DMA_STATUS) == STATUS_DONE | STATUS_ERROR
    assert engine.transfers == 0


def test_dma_registers_are_32_bit_only(physmem: PhysicalMemory) -> None:
    engine = DmaEngine(physmem)
    fault = MemoryFault(0x0B00_0000, 1, False)
    assert engine.register_fault(None, fault, 0x0B00_0000) is FaultResult.UNHANDLED
