"""The vGIC behind the devices' raise/lower interface: level-triggered SPIs."""

from __future__ import annotations

import pytest

from sel4vmm.devices.gicv2 import GICC_CTLR, GICC_IAR, GICC_PMR, ListRegisterState, Vgic
from sel4vmm.devices.gicv2.lines import VgicLines

SPI = 32 + 43  # libvmm's virtio-blk: interrupts = <0x00 43 0x04>


def _enabled_vgic() -> Vgic:
    vgic = Vgic()
    vgic.enabled = True
    vgic.shared.enabled[SPI] = True
    vgic.cpu.write(GICC_PMR, 4, 0xFF)
    vgic.cpu.write(GICC_CTLR, 4, 1)
    return vgic


def test_raising_a_line_makes_its_spi_pending_at_once() -> None:
    vgic = _enabled_vgic()
    line = VgicLines(vgic).line(SPI)
    line.raise_line()
    assert vgic.shared.pending[SPI]
    assert vgic.list_registers[0].intid == SPI


def test_a_line_raised_while_the_spi_is_disabled_is_seen_through_its_level_source() -> None:
    vgic = Vgic()
    lines = VgicLines(vgic)
    line = lines.line(SPI)
    line.raise_line()
    assert not vgic.shared.pending[SPI]  # refused: the distributor is off
    (source,) = lines.sources
    assert source.intid == SPI and source.asserted()
    line.lower_line()
    assert not source.asserted() and not lines.is_raised(SPI)


def test_only_spis_and_one_device_per_line() -> None:
    lines = VgicLines(Vgic())
    with pytest.raises(ValueError, match="not a shared peripheral interrupt"):
        lines.line(27)
    lines.line(SPI)
    with pytest.raises(ValueError, match="already has a device"):
        lines.line(SPI)
    with pytest.raises(ValueError, match="not handed out"):
        lines.set_level(SPI + 1, True)


def test_lowering_a_line_withdraws_an_interrupt_the_guest_has_not_taken() -> None:
    vgic = _enabled_vgic()
    line = VgicLines(vgic).line(SPI)
    line.raise_line()
    line.lower_line()
    assert not vgic.shared.pending[SPI]
    assert all(lr.state is ListRegisterState.INVALID for lr in vgic.list_registers)


def test_lowering_a_line_leaves_an_acknowledged_interrupt_active() -> None:
    vgic = _enabled_vgic()
    line = VgicLines(vgic).line(SPI)
    line.raise_line()
    assert vgic.cpu.read(GICC_IAR, 4) == SPI
    line.lower_line()
    assert vgic.list_registers[0].state is ListRegisterState.ACTIVE
