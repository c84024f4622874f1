"""The virtual GICv2: distributor registers, list registers, acknowledge and EOI."""

from __future__ import annotations

import pytest

from sel4vmm.devices.gicv2 import (
    GICC_CTLR,
    GICC_EOIR,
    GICC_HPPIR,
    GICC_IAR,
    GICC_PMR,
    GICC_RPR,
    GICD_CTLR,
    GICD_ICENABLER,
    GICD_ICPENDR,
    GICD_IIDR,
    GICD_IPRIORITYR,
    GICD_ISACTIVER,
    GICD_ISENABLER,
    GICD_ISPENDR,
    GICD_ITARGETSR,
    GICD_SGIR,
    GICD_TYPER,
    SPURIOUS_INTID,
    ListRegisterState,
    Vgic,
)
from sel4vmm.memory import FaultResult, MemoryFault


def enabled_vgic(*intids: int, **kwargs: object) -> Vgic:
    vgic = Vgic(**kwargs)  # type: ignore[arg-type]
    vgic.write_distributor(GICD_CTLR, 4, 1)
    for intid in intids:
        vgic.write_distributor(GICD_ISENABLER + 4 * (intid // 32), 4, 1 << (intid % 32))
    vgic.cpu.write(GICC_PMR, 4, 0xFF)
    vgic.cpu.write(GICC_CTLR, 4, 1)
    return vgic


def test_identification_registers_describe_a_gic400_with_128_lines() -> None:
    vgic = Vgic()
    assert vgic.read_distributor(GICD_TYPER, 4) == 3  # ITLinesNumber: 32 * (3 + 1) lines
    assert vgic.read_distributor(GICD_IIDR, 4) & 0xFFF == 0x43B  # implementer ARM
    assert vgic.read_distributor(0xFE8, 4) >> 4 == 2  # PIDR2.ArchRev: GICv2


def test_injection_is_refused_while_the_distributor_or_the_line_is_disabled() -> None:
    vgic = Vgic()
    assert not vgic.inject(33)
    vgic.write_distributor(GICD_CTLR, 4, 1)
    assert not vgic.inject(33)
    vgic.write_distributor(GICD_ISENABLER + 4, 4, 1 << 1)
    assert vgic.inject(33)
    assert vgic.read_distributor(GICD_ISPENDR + 4, 4) == 1 << 1


def test_acknowledge_then_eoi_walks_pending_active_inactive() -> None:
    eois: list[int] = []
    vgic = enabled_vgic(27, on_eoi=eois.append)
    vgic.inject(27)
    assert vgic.cpu.irq_line()
    assert vgic.cpu.read(GICC_HPPIR, 4) == 27
    assert vgic.cpu.read(GICC_IAR, 4) == 27
    assert vgic.active[27] and not vgic.pending[27]
    assert not vgic.cpu.irq_line()
    assert vgic.cpu.read(GICC_IAR, 4) == SPURIOUS_INTID
    assert vgic.read_distributor(GICD_ISACTIVER, 4) == 1 << 27
    vgic.cpu.write(GICC_EOIR, 4, 27)
    assert not vgic.active[27]
    assert eois == [27]
    assert all(lr.state is ListRegisterState.INVALID for lr in vgic.list_registers)


def test_more_interrupts_than_list_registers_wait_in_the_overflow_queue() -> None:
    lines = list(range(40, 46))
    vgic = enabled_vgic(*lines)
    for intid in lines:
        vgic.inject(intid)
    assert len(vgic.overflow) == 2
    seen = []
    for _ in lines:
        intid = vgic.cpu.read(GICC_IAR, 4)
        seen.append(intid)
        vgic.cpu.write(GICC_EOIR, 4, intid)
    assert sorted(seen) == lines
    assert not vgic.overflow


def test_higher_priority_is_acknowledged_first_and_pmr_masks() -> None:
    vgic = enabled_vgic(40, 41)
    vgic.write_distributor(GICD_IPRIORITYR + 40, 1, 0xA0)  # byte access
    vgic.write_distributor(GICD_IPRIORITYR + 41, 1, 0x20)
    assert vgic.read_distributor(GICD_IPRIORITYR + 40, 4) == 0x20A0
    vgic.inject(40)
    vgic.inject(41)
    vgic.cpu.write(GICC_PMR, 4, 0x10)
    assert not vgic.cpu.irq_line()
    vgic.cpu.write(GICC_PMR, 4, 0xF0)
    assert vgic.cpu.read(GICC_IAR, 4) == 41
    assert vgic.cpu.read(GICC_RPR, 4) == 0x20
    # 40 has lower priority than the running 41: no preemption until EOI.
    assert not vgic.cpu.irq_line()
    vgic.cpu.write(GICC_EOIR, 4, 41)
    assert vgic.cpu.read(GICC_IAR, 4) == 40


def test_clear_pending_and_disable() -> None:
    vgic = enabled_vgic(50)
    vgic.inject(50)
    vgic.write_distributor(GICD_ICPENDR + 4, 4, 1 << 18)
    assert not vgic.pending[50]
    assert vgic.cpu.read(GICC_IAR, 4) == SPURIOUS_INTID
    vgic.write_distributor(GICD_ICENABLER + 4, 4, 1 << 18)
    assert not vgic.irq_enabled[50]
    assert not vgic.inject(50)


def test_sgis_cannot_be_disabled_and_sgir_targets_the_only_cpu() -> None:
    vgic = enabled_vgic()
    vgic.write_distributor(GICD_ICENABLER, 4, 0xFFFF)
    assert vgic.read_distributor(GICD_ISENABLER, 4) & 0xFFFF == 0xFFFF
    vgic.write_distributor(GICD_SGIR, 4, 1 << 24 | 5)  # "all but self": nobody
    assert not vgic.pending[5]
    vgic.write_distributor(GICD_SGIR, 4, 2 << 24 | 5)  # "self"
    assert vgic.pending[5]


def test_private_targets_read_as_this_cpu_and_ignore_writes() -> None:
    vgic = Vgic()
    vgic.write_distributor(GICD_ITARGETSR, 4, 0xFFFF_FFFF)
    assert vgic.read_distributor(GICD_ITARGETSR, 4) == 0x0101_0101


def test_distributor_fault_callback_answers_reads_and_applies_writes() -> None:
    vgic = Vgic()
    base = 0x0800_0000
    write = MemoryFault(base + GICD_CTLR, 4, True, 1)
    assert vgic.distributor_fault(None, write, base) is FaultResult.HANDLED
    read = MemoryFault(base + GICD_CTLR, 4, False)
    assert vgic.distributor_fault(None, read, base) is FaultResult.HANDLED
    assert read.read_value == 1


def test_bad_line_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        Vgic(num_lines=100)
