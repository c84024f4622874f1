"""The ICC_* system registers: acknowledge, priority drop and deactivation, masking,
preemption, SGIs, and the encodings a backend maps MRS/MSR with (ARM IHI 0069, the
ICC_*_EL1 register descriptions and "Interrupt prioritization")."""

from __future__ import annotations

import pytest

from sel4vmm.devices.gicv3 import ICC_ENCODINGS, SPURIOUS_INTID, Gicv3, InterruptLine, icc_register
from sel4vmm.devices.irq import InterruptController, IrqLine
from tests.devices.gicv3.harness import Guest, make_guest

#: Copied from Linux v6.6 arch/arm64/include/asm/sysreg.h (sys_reg(op0, op1, CRn, CRm, op2)).
LINUX_SYSREG_H = """
#define SYS_ICC_PMR_EL1			sys_reg(3, 0, 4, 6, 0)
#define SYS_ICC_IAR0_EL1		sys_reg(3, 0, 12, 8, 0)
#define SYS_ICC_HPPIR0_EL1		sys_reg(3, 0, 12, 8, 2)
#define SYS_ICC_BPR0_EL1		sys_reg(3, 0, 12, 8, 3)
#define SYS_ICC_AP0R0_EL1		sys_reg(3, 0, 12, 8, 4)
#define SYS_ICC_AP1R0_EL1		sys_reg(3, 0, 12, 9, 0)
#define SYS_ICC_DIR_EL1			sys_reg(3, 0, 12, 11, 1)
#define SYS_ICC_RPR_EL1			sys_reg(3, 0, 12, 11, 3)
#define SYS_ICC_SGI1R_EL1		sys_reg(3, 0, 12, 11, 5)
#define SYS_ICC_IAR1_EL1		sys_reg(3, 0, 12, 12, 0)
#define SYS_ICC_EOIR1_EL1		sys_reg(3, 0, 12, 12, 1)
#define SYS_ICC_HPPIR1_EL1		sys_reg(3, 0, 12, 12, 2)
#define SYS_ICC_BPR1_EL1		sys_reg(3, 0, 12, 12, 3)
#define SYS_ICC_CTLR_EL1		sys_reg(3, 0, 12, 12, 4)
#define SYS_ICC_SRE_EL1			sys_reg(3, 0, 12, 12, 5)
#define SYS_ICC_IGRPEN0_EL1		sys_reg(3, 0, 12, 12, 6)
#define SYS_ICC_IGRPEN1_EL1		sys_reg(3, 0, 12, 12, 7)
"""


def linux_encodings() -> dict[str, tuple[int, ...]]:
    table = {}
    for line in LINUX_SYSREG_H.strip().splitlines():
        _, name, call = line.split(None, 2)
        fields = call.removeprefix("sys_reg(").removesuffix(")").split(",")
        table[name.removeprefix("SYS_")] = tuple(int(f) for f in fields)
    return table


def test_encodings_are_linuxs() -> None:
    assert linux_encodings() == ICC_ENCODINGS
    assert icc_register((3, 0, 12, 12, 0)) == "ICC_IAR1_EL1"
    assert icc_register((3, 0, 1, 0, 0)) is None  # SCTLR_EL1 is not the GIC's


def test_read_by_encoding_and_unknown_names() -> None:
    gic = Gicv3(1)
    assert gic.read_sysreg(0, (3, 0, 12, 12, 5)) == 0b111  # SRE, DFB, DIB RAO/WI
    with pytest.raises(KeyError, match="not an ICC"):
        gic.read_sysreg(0, "ICC_EOIR0_EL1")


def ready(num_cpus: int = 2, *, eoi_mode: int = 0, spis: int = 4) -> Guest:
    """Distributor and every CPU interface enabled, PMR open, SPIs 32+ group 1, enabled."""
    guest = make_guest(num_cpus)
    guest.gicd(0, 0b11)
    for cpu in range(num_cpus):
        guest.write(guest.rd(cpu, 0x14), 0)
        guest.write(guest.sgi(cpu, 0x80), 0xFFFF_FFFF)
        guest.write(guest.sgi(cpu, 0x100), 0xFFFF)  # SGIs
        guest.msr(cpu, "ICC_PMR_EL1", 0xF0)
        guest.msr(cpu, "ICC_CTLR_EL1", eoi_mode << 1)
        guest.msr(cpu, "ICC_IGRPEN1_EL1", 1)
    guest.gicd(0x84, 0xFFFF_FFFF)
    guest.gicd(0x104, (1 << spis) - 1)
    return guest


def set_priority(guest: Guest, intid: int, priority: int) -> None:
    guest.gicd(0x400 + intid, priority, width=1)


def test_nothing_pending_reads_1023() -> None:
    guest = ready()
    assert guest.mrs(0, "ICC_IAR1_EL1") == SPURIOUS_INTID == 1023
    assert guest.mrs(0, "ICC_HPPIR1_EL1") == 1023
    assert guest.mrs(0, "ICC_RPR_EL1") == 0xFF  # idle


def test_priority_mask_must_be_strictly_higher() -> None:
    guest = ready()
    set_priority(guest, 32, 0xA0)
    guest.gic.raise_line(32)
    guest.msr(0, "ICC_PMR_EL1", 0xA0)
    assert not guest.gic.pending_irq(0)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 1023
    assert guest.mrs(0, "ICC_HPPIR1_EL1") == 32  # HPPIR ignores the mask
    guest.msr(0, "ICC_PMR_EL1", 0xA8)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 32


def test_highest_priority_first_then_lowest_intid() -> None:
    guest = ready(spis=4)
    for intid, priority in ((32, 0xA0), (33, 0x80), (34, 0x80)):
        set_priority(guest, intid, priority)
        guest.gic.raise_line(intid)
    order = []
    for _ in range(3):
        intid = guest.mrs(0, "ICC_IAR1_EL1")
        order.append(intid)
        guest.gic.lower_line(intid)  # the device's handler clears its level
        guest.msr(0, "ICC_EOIR1_EL1", intid)
    assert order == [33, 34, 32]


def test_preemption_uses_the_group_priority_of_bpr1() -> None:
    guest = ready()
    set_priority(guest, 32, 0x98)
    set_priority(guest, 33, 0x90)
    guest.gic.raise_line(32)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 32
    guest.gic.raise_line(33)
    assert guest.gic.pending_irq(0)  # BPR1 = 3: group priorities 0x98 vs 0x90
    guest.msr(0, "ICC_BPR1_EL1", 4)  # group priority [7:4]: both 0x90
    assert not guest.gic.pending_irq(0)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 1023
    guest.msr(0, "ICC_EOIR1_EL1", 32)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 33


def test_bpr1_cannot_go_below_its_minimum() -> None:
    guest = ready()
    guest.msr(0, "ICC_BPR1_EL1", 0)
    assert guest.mrs(0, "ICC_BPR1_EL1") == 3
    guest.msr(0, "ICC_BPR0_EL1", 0)
    assert guest.mrs(0, "ICC_BPR0_EL1") == 2
    guest.msr(0, "ICC_CTLR_EL1", 1)  # CBPR: BPR1 reads BPR0 + 1
    assert guest.mrs(0, "ICC_BPR1_EL1") == 3


def test_eoimode_0_eoi_deactivates() -> None:
    guest = ready(eoi_mode=0)
    guest.gic.raise_line(32)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 32
    guest.gic.lower_line(32)
    assert guest.gicd(0x304) == 1  # active
    guest.msr(0, "ICC_DIR_EL1", 32)  # EOImode 0: DIR is not the way to deactivate
    assert guest.gicd(0x304) == 1
    guest.msr(0, "ICC_EOIR1_EL1", 32)
    assert guest.gicd(0x304) == 0
    assert guest.mrs(0, "ICC_RPR_EL1") == 0xFF


def test_eoimode_1_splits_priority_drop_and_deactivation() -> None:
    guest = ready(eoi_mode=1)
    set_priority(guest, 32, 0x80)
    guest.gic.raise_line(32)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 32
    assert guest.mrs(0, "ICC_RPR_EL1") == 0x80
    assert guest.mrs(0, "ICC_AP1R0_EL1") == 1 << (0x80 >> 3)
    guest.msr(0, "ICC_EOIR1_EL1", 32)
    assert guest.mrs(0, "ICC_RPR_EL1") == 0xFF
    assert guest.mrs(0, "ICC_AP1R0_EL1") == 0
    assert guest.gicd(0x304) == 1  # still active until DIR
    guest.msr(0, "ICC_DIR_EL1", 32)
    assert guest.gicd(0x304) == 0


def test_level_interrupt_asserted_after_eoi_is_taken_again() -> None:
    guest = ready()
    guest.gic.raise_line(32)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 32
    assert not guest.gic.pending_irq(0)  # active and pending: not signalled again
    guest.msr(0, "ICC_EOIR1_EL1", 32)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 32  # the line is still high
    guest.gic.lower_line(32)
    guest.msr(0, "ICC_EOIR1_EL1", 32)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 1023


def test_edge_interrupt_latches_one_edge_at_a_time() -> None:
    guest = ready()
    guest.gicd(0xC08, 0b10)  # INTID 32 edge-triggered
    guest.gic.raise_line(32)
    guest.gic.raise_line(32)  # still high: no new edge
    guest.gic.lower_line(32)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 32
    guest.msr(0, "ICC_EOIR1_EL1", 32)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 1023
    line: InterruptLine = guest.gic.line(32)
    line.raise_()
    assert guest.mrs(0, "ICC_IAR1_EL1") == 32
    line.lower()
    line.raise_()  # a new edge while active: pending and active
    assert guest.gicd(0x204) == 1 and guest.gicd(0x304) == 1
    assert guest.mrs(0, "ICC_IAR1_EL1") == 1023
    guest.msr(0, "ICC_EOIR1_EL1", 32)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 32


def test_disabled_groups_and_interrupts_are_not_signalled() -> None:
    guest = ready()
    guest.gic.raise_line(32)
    guest.msr(0, "ICC_IGRPEN1_EL1", 0)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 1023
    guest.msr(0, "ICC_IGRPEN1_EL1", 1)
    guest.gicd(0, 0)  # GICD_CTLR.EnableGrp1 off
    assert guest.mrs(0, "ICC_IAR1_EL1") == 1023
    guest.gicd(0, 0b10)
    guest.gicd(0x184, 1)  # ICENABLER1: INTID 32
    assert guest.mrs(0, "ICC_IAR1_EL1") == 1023
    guest.gicd(0x84, 0)  # Group 0: never through IAR1
    guest.gicd(0x104, 1)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 1023
    assert guest.mrs(0, "ICC_IAR0_EL1") == 1023
    guest.gicd(0x84, 1)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 32


def test_spi_routing_by_affinity_and_one_of_n() -> None:
    guest = ready(num_cpus=3)
    guest.gicd(0x6000 + 8 * 32, 0x7, width=8)  # no PE has affinity 7: it waits
    guest.gic.raise_line(32)
    assert not any(guest.gic.pending_irq(cpu) for cpu in range(3))
    guest.gicd(0x6000 + 8 * 32, 2, width=8)
    assert [guest.gic.pending_irq(cpu) for cpu in range(3)] == [False, False, True]
    guest.gicd(0x6000 + 8 * 32, 1 << 31, width=8)  # Interrupt_Routing_Mode = 1
    assert [guest.gic.pending_irq(cpu) for cpu in range(3)] == [True, False, False]
    guest.msr(0, "ICC_IGRPEN1_EL1", 0)  # PE 0 no longer participates
    assert [guest.gic.pending_irq(cpu) for cpu in range(3)] == [False, True, False]
    guest.write(guest.rd(1, 0x14), 0b10)  # PE 1's redistributor asleep
    assert [guest.gic.pending_irq(cpu) for cpu in range(3)] == [False, False, True]


def test_sgi1r_affinity_clusters_and_range_selector() -> None:
    guest = make_guest(4, affinities=[0x000, 0x001, 0x100, 0x111])
    for cpu in range(4):
        guest.write(guest.rd(cpu, 0x14), 0)
        guest.write(guest.sgi(cpu, 0x80), 0xFFFF)
        guest.write(guest.sgi(cpu, 0x100), 0xFFFF)
        guest.msr(cpu, "ICC_PMR_EL1", 0xF0)
        guest.msr(cpu, "ICC_IGRPEN1_EL1", 1)
    guest.gicd(0, 0b10)
    # SGI 3 to Aff1 = 1, TargetList bit 0: PE 2 (affinity 0x100) only.
    guest.msr(0, "ICC_SGI1R_EL1", 3 << 24 | 1 << 16 | 0b1)
    assert [guest.gic.pending_irq(cpu) for cpu in range(4)] == [False, False, True, False]
    # RS = 1 selects Aff0 16-31: bit 1 is Aff0 = 17 (0x11) in cluster 1: PE 3.
    guest.msr(0, "ICC_SGI1R_EL1", 4 << 24 | 1 << 44 | 1 << 16 | 0b10)
    assert guest.mrs(3, "ICC_IAR1_EL1") == 4
    # An SGI in Group 0 at the target is not forwarded by SGI1R.
    guest.write(guest.sgi(1, 0x80), 0xFFFF & ~(1 << 6))
    guest.msr(0, "ICC_SGI1R_EL1", 6 << 24 | 0b10)
    assert guest.read(guest.sgi(1, 0x200)) == 0


def test_ap1r0_write_restores_and_clears_active_priorities() -> None:
    guest = ready()
    guest.msr(0, "ICC_AP1R0_EL1", 1 << (0x40 >> 3))
    assert guest.mrs(0, "ICC_RPR_EL1") == 0x40
    guest.gic.raise_line(32)  # priority 0: preempts 0x40
    assert guest.gic.pending_irq(0)
    set_priority(guest, 32, 0x40)
    assert not guest.gic.pending_irq(0)
    guest.msr(0, "ICC_AP1R0_EL1", 0)
    assert guest.gic.pending_irq(0)


def test_on_change_is_told_and_lines_check_their_intid() -> None:
    calls: list[None] = []
    gic = Gicv3(2, on_change=lambda: calls.append(None))
    gic.raise_line(40)
    gic.write_sysreg(0, "ICC_PMR_EL1", 0xF0)
    assert len(calls) == 2
    for intid, cpu in ((3, 0), (27, None), (27, 2), (40, 1), (128, None), (1023, None)):
        with pytest.raises(ValueError):
            gic.raise_line(intid, cpu)
    with pytest.raises(ValueError):
        gic.line(200)


def test_set_level_is_the_devices_layers_controller_call() -> None:
    guest = ready()
    controller: InterruptController = guest.gic
    line = IrqLine(controller, 33)
    line.raise_line()
    assert guest.mrs(0, "ICC_HPPIR1_EL1") == 33
    line.lower_line()
    assert guest.mrs(0, "ICC_HPPIR1_EL1") == 1023
    timer = IrqLine(guest.gic.private_lines(1), 27)
    guest.write(guest.sgi(1, 0x100), 1 << 27)
    timer.raise_line()
    assert [guest.gic.pending_irq(cpu) for cpu in range(2)] == [False, True]
    timer.lower_line()
    assert not guest.gic.pending_irq(1)
    with pytest.raises(ValueError):
        guest.gic.private_lines(2)
