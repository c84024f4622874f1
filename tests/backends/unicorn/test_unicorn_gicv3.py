"""The GICv3 on a real unicorn vCPU: ICC_* from the undefined-instruction path, ID registers
through HCR_EL2.TID3, and the loop's interface over the model (no Linux needed).

The program is assembled with ``tests/a64.py``; its MRS/MSR words are the ones the GICv3
model's own test checks against GNU as (``tests/devices/gicv3/test_gicv3_unicorn.py``).
"""

from __future__ import annotations

import pytest
from unicorn.arm64_const import (
    UC_ARM64_REG_X0,
    UC_ARM64_REG_X5,
    UC_ARM64_REG_X6,
    UC_ARM64_REG_X7,
    UC_ARM64_REG_X8,
    UC_ARM64_REG_X30,
)

from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.gic_controller import Gicv2Controller, Gicv3Controller
from sel4vmm.backends.unicorn.traps import sysreg_move_from_syndrome
from sel4vmm.devices.gicv2 import (
    GICC_CTLR,
    GICC_IAR,
    GICC_PMR,
    GICD_CTLR,
    GICD_ISENABLER,
    Vgic,
)
from sel4vmm.devices.gicv3 import ICC_ENCODINGS, Gicv3Layout
from sel4vmm.memory import FaultResult, MemoryFault
from tests.a64 import mov64, mrs, msr, pack, psci, str_w

GICD = 0x3880_0000
RD_BASE = 0x3888_0000
SGI_BASE = RD_BASE + 0x1_0000
LAYOUT = Gicv3Layout(GICD, ((RD_BASE, 0x4_0000),), "interrupt-controller@38800000")
PSCI_SYSTEM_OFF = 0x8400_0008
XZR = 31


def icc(name: str) -> tuple[int, int, int, int, int]:
    return ICC_ENCODINGS[name]


ID_AA64PFR0_EL1 = (3, 0, 0, 4, 0)

PROGRAM = [
    mrs(ID_AA64PFR0_EL1, 8),
    mrs(icc("ICC_SRE_EL1"), 30),  # X30: unicorn's id is not X0 + 30
    *mov64(1, GICD),
    *mov64(2, 0x13),  # GICD_CTLR: ARE_NS | EnableGrp1A | EnableGrp1
    str_w(2, 1),
    *mov64(3, RD_BASE + 0x014),
    str_w(XZR, 3),  # GICR_WAKER = 0: the PE is awake
    *mov64(2, 0b10),  # SGI 1
    *mov64(4, SGI_BASE + 0x080),
    str_w(2, 4),  # GICR_IGROUPR0: Group 1
    *mov64(4, SGI_BASE + 0x100),
    str_w(2, 4),  # GICR_ISENABLER0
    *mov64(2, 0xFF),
    msr(icc("ICC_PMR_EL1"), 2),
    *mov64(2, 1),
    msr(icc("ICC_IGRPEN1_EL1"), 2),
    *mov64(2, 0x0100_0001),  # INTID 1, target list {Aff0 = 0}: this vCPU
    msr(icc("ICC_SGI1R_EL1"), 2),
    mrs(icc("ICC_IAR1_EL1"), 5),
    msr(icc("ICC_EOIR1_EL1"), 5),
    mrs(icc("ICC_IAR1_EL1"), 6),
    msr(icc("ICC_PMR_EL1"), XZR),
    mrs(icc("ICC_PMR_EL1"), 7),
    *psci(PSCI_SYSTEM_OFF),
]


def test_the_trapped_id_register_syndrome_decodes_to_its_mrs() -> None:
    # Measured on unicorn 2.1.4 with HCR_EL2.TID3: "mrs x0, id_aa64pfr0_el1" at EL1 stops
    # with EXCP_UDEF and this ESR (EC 0x18, IL, Op0 3, CRm 4, direction read).
    move = sysreg_move_from_syndrome(0x6230_0009)
    assert move.is_read and move.encoding == (3, 0, 0, 4, 0) and move.rt == 0
    assert mrs(ID_AA64PFR0_EL1, 8) == 0xD538_0408  # GNU as 2.40: "mrs x8, id_aa64pfr0_el1"


def test_a_bare_metal_guest_drives_the_gicv3_through_icc_registers() -> None:
    board = EmulatedBoard(GuestLayout(), Console())
    try:
        board.use_gicv3(LAYOUT, "test")
        entry = board.load(pack(PROGRAM), "gicv3 program")
        reason = board.loop.run(entry, time_limit=30)
        uc = board.vcpu.uc
        assert reason is StopReason.SYSTEM_OFF, board.vcpu.diagnostic
        registers = {
            "x5": uc.reg_read(UC_ARM64_REG_X5),
            "x6": uc.reg_read(UC_ARM64_REG_X6),
            "x7": uc.reg_read(UC_ARM64_REG_X7),
            "gic field": uc.reg_read(UC_ARM64_REG_X8) >> 24 & 0xF,
            "sre": uc.reg_read(UC_ARM64_REG_X30) & 1,
            "x0": uc.reg_read(UC_ARM64_REG_X0),
        }
        assert registers == {
            "x5": 1,  # SGI 1 acknowledged
            "x6": 1023,  # nothing pending after EOI: spurious
            "x7": 0,  # MSR from XZR wrote zero
            "gic field": 1,  # ID_AA64PFR0_EL1.GIC: system-register interface
            "sre": 1,
            "x0": 0,  # PSCI returned
        }
        # Nine ICC accesses and one ID register read, all served by the VMM.
        assert board.vcpu.system_register_accesses == 10
        assert board.loop.stats.irqs_delivered == 1
    finally:
        board.close()


def test_the_gicv3_adapter_keeps_levels_per_vcpu_and_kicks_the_target() -> None:
    kicked: list[int] = []
    controller = Gicv3Controller(2, kicked.append)
    gic = controller.gic
    gic.distributor.write32(0x000, 0x13, 0xFFFF_FFFF)
    for cpu in (0, 1):
        gic.redistributors.write32(cpu, 0x14, 0, 0xFFFF_FFFF)  # awake
        gic.write_sysreg(cpu, "ICC_PMR_EL1", 0xFF)
        gic.write_sysreg(cpu, "ICC_IGRPEN1_EL1", 1)
    sgi_base = 0x1_0000
    gic.redistributors.write32(1, sgi_base + 0x080, 1 << 27, 0xFFFF_FFFF)  # PPI 27: Group 1
    gic.redistributors.write32(1, sgi_base + 0x100, 1 << 27, 0xFFFF_FFFF)  # ... enabled
    controller.drive(27, 0, True)  # vCPU 0's timer: not enabled there, nothing happens
    assert kicked == [] and not controller.irq_pending(0)
    controller.drive(27, 1, True)
    assert kicked == [1] and controller.irq_pending(1)
    controller.drive(27, 1, True)  # the same level again is not a new event
    assert kicked == [1]
    assert controller.read_sysreg(1, ICC_ENCODINGS["ICC_IAR1_EL1"]) == 27
    assert controller.acknowledged() == 1
    assert controller.write_sysreg(1, ICC_ENCODINGS["ICC_EOIR1_EL1"], 27)
    assert controller.irq_pending(1)  # the level is still high: pending again
    controller.drive(27, 1, False)
    assert not controller.irq_pending(1)
    assert controller.read_sysreg(1, (3, 3, 13, 0, 3)) is None  # TPIDRRO_EL0: not the GIC's


def test_the_gicv2_adapter_injects_an_asserted_source_once() -> None:
    vgic = Vgic()
    base = 0x0800_0000
    for offset, value in ((GICD_CTLR, 1), (GICD_ISENABLER, 1 << 27)):
        fault = MemoryFault(base + offset, 4, True, value)
        assert vgic.distributor_fault(None, fault, base) is FaultResult.HANDLED
    vgic.cpu.write(GICC_CTLR, 4, 1)
    vgic.cpu.write(GICC_PMR, 4, 0xFF)
    controller = Gicv2Controller(vgic)
    controller.drive(27, 0, True)
    controller.drive(27, 0, True)
    assert controller.irq_pending(0)
    assert vgic.cpu.read(GICC_IAR, 4) == 27
    assert controller.acknowledged() == 1
    controller.drive(27, 0, False)
    assert vgic.cpu.read(GICC_IAR, 4) == 1023


@pytest.mark.parametrize(
    "word",
    [0x0000_0000, msr(ID_AA64PFR0_EL1, 0)],
    ids=["udf #0", "msr id_aa64pfr0_el1, x0"],  # UDF: permanently undefined (Arm ARM C6.2)
)
def test_an_undefined_instruction_that_is_no_icc_access_stays_the_guests(word: int) -> None:
    board = EmulatedBoard(GuestLayout(), Console())
    try:
        board.use_gicv3(LAYOUT, "test")
        entry = board.load(pack([word, *psci(PSCI_SYSTEM_OFF)]), "undefined program")
        board.loop.run(entry, time_limit=30)
        # Vectored into the guest's EL1 (VBAR_EL1 = 0: nothing there, so the run stops on
        # the fetch), not served and not skipped by the VMM.
        assert board.vcpu.exceptions_vectored == 1
        assert board.vcpu.system_register_accesses == 0
        assert board.vcpu.stop_reason is not StopReason.SYSTEM_OFF
    finally:
        board.close()
