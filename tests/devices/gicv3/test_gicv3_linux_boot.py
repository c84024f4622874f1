"""What Linux's GICv3 driver does at boot, replayed through a real VM's fault dispatch.

The sequence and every constant follow Linux v6.6 ``drivers/irqchip/irq-gic-v3.c``
(``gic_of_init`` / ``gic_init_bases`` / ``gic_dist_init`` / ``gic_cpu_init`` /
``gic_cpu_sys_reg_init``) and ``include/linux/irqchip/arm-gic-v3.h``; the constants are
copied from there.
"""

from __future__ import annotations

import pytest

from tests.devices.gicv3.harness import Guest, make_guest

# include/linux/irqchip/arm-gic-v3.h
GICD_CTLR = 0x0000
GICD_TYPER = 0x0004
GICD_IGROUPR = 0x0080
GICD_ISENABLER = 0x0100
GICD_ICENABLER = 0x0180
GICD_ICACTIVER = 0x0380
GICD_IPRIORITYR = 0x0400
GICD_ICFGR = 0x0C00
GICD_IROUTER = 0x6000
GICD_PIDR2 = 0xFFE8
GIC_PIDR2_ARCH_MASK = 0xF0
GIC_PIDR2_ARCH_GICv3 = 0x30
GICD_CTLR_RWP = 1 << 31
GICD_CTLR_ARE_NS = 1 << 4
GICD_CTLR_ENABLE_G1A = 1 << 1
GICD_CTLR_ENABLE_G1 = 1 << 0
GICD_CTLR_DS = 1 << 6
GICR_CTLR = 0x0000
GICR_TYPER = 0x0008
GICR_WAKER = 0x0014
GICR_PIDR2 = GICD_PIDR2
GICR_CTLR_RWP = 1 << 3
GICR_TYPER_LAST = 1 << 4
GICR_WAKER_ProcessorSleep = 1 << 1
GICR_WAKER_ChildrenAsleep = 1 << 2
GICR_IGROUPR0 = GICD_IGROUPR
GICR_ISENABLER0 = GICD_ISENABLER
GICR_ICENABLER0 = GICD_ICENABLER
GICR_ICACTIVER0 = GICD_ICACTIVER
GICR_IPRIORITYR0 = GICD_IPRIORITYR
GICR_ICFGR0 = GICD_ICFGR
ICC_CTLR_EL1_EOImode_drop = 1 << 1
ICC_CTLR_EL1_PRI_BITS_SHIFT = 8
ICC_CTLR_EL1_PRI_BITS_MASK = 0x7 << ICC_CTLR_EL1_PRI_BITS_SHIFT
ICC_SRE_EL1_SRE = 1 << 0
# include/linux/irqchip/arm-gic-common.h and drivers/irqchip/irq-gic-v3.c
GICD_INT_DEF_PRI = 0xA0
GICD_INT_DEF_PRI_X4 = 0xA0A0A0A0
GICD_INT_EN_CLR_X32 = 0xFFFFFFFF
GICD_INT_ACTLR_X32 = 0xFFFFFFFF
DEFAULT_PMR_VALUE = 0xF0
# arch/arm64/include/asm/arch_gicv3.h: MPIDR_TO_SGI_AFFINITY and friends
ICC_SGI1R_SGI_ID_SHIFT = 24
ICC_SGI1R_AFFINITY_1_SHIFT = 16
ICC_SGI1R_IRQ_ROUTING_MODE_BIT = 40


def gic_dist_wait_for_rwp(guest: Guest) -> None:
    assert not guest.gicd(GICD_CTLR) & GICD_CTLR_RWP


def gic_dist_init(guest: Guest, gic_irqs: int, boot_affinity: int) -> None:
    guest.gicd(GICD_CTLR, 0)
    gic_dist_wait_for_rwp(guest)
    for i in range(32, gic_irqs, 32):
        guest.gicd(GICD_IGROUPR + i // 8, 0xFFFFFFFF)
    # gic_dist_config(): level-triggered, default priority, deactivated and disabled.
    for i in range(32, gic_irqs, 16):
        guest.gicd(GICD_ICFGR + i // 4, 0)
    for i in range(32, gic_irqs, 4):
        guest.gicd(GICD_IPRIORITYR + i, GICD_INT_DEF_PRI_X4)
    for i in range(32, gic_irqs, 32):
        guest.gicd(GICD_ICACTIVER + i // 8, GICD_INT_ACTLR_X32)
        guest.gicd(GICD_ICENABLER + i // 8, GICD_INT_EN_CLR_X32)
    gic_dist_wait_for_rwp(guest)
    guest.gicd(GICD_CTLR, GICD_CTLR_ARE_NS | GICD_CTLR_ENABLE_G1A | GICD_CTLR_ENABLE_G1)
    gic_dist_wait_for_rwp(guest)
    for i in range(32, gic_irqs):
        guest.gicd(GICD_IROUTER + i * 8, boot_affinity, width=8)


def gic_populate_rdist(guest: Guest, mpidr_affinity: int) -> int:
    """gic_iterate_rdists / __gic_populate_rdist: the RD_base whose TYPER matches."""
    address = guest.rd(0, 0)
    while True:
        pidr2 = guest.read(address + GICR_PIDR2) & GIC_PIDR2_ARCH_MASK
        assert pidr2 == GIC_PIDR2_ARCH_GICv3, "No redistributor present"
        typer = guest.read(address + GICR_TYPER, 8)
        if typer >> 32 == mpidr_affinity:
            return address
        assert not typer & GICR_TYPER_LAST, f"mpidr {mpidr_affinity:#x} has no re-distributor"
        address += 0x20000


def gic_enable_redist(guest: Guest, rbase: int) -> None:
    val = guest.read(rbase + GICR_WAKER)
    val &= ~GICR_WAKER_ProcessorSleep
    guest.write(rbase + GICR_WAKER, val)
    for _ in range(1_000_000):  # Linux waits up to 1 s; the model answers at once
        if not guest.read(rbase + GICR_WAKER) & GICR_WAKER_ChildrenAsleep:
            return
    pytest.fail("redistributor failed to wake up")


def gic_cpu_init(guest: Guest, cpu: int, affinity: int) -> None:
    rbase = gic_populate_rdist(guest, affinity)
    gic_enable_redist(guest, rbase)
    sgi_base = rbase + 0x10000
    guest.write(sgi_base + GICR_IGROUPR0, 0xFFFFFFFF)
    # gic_cpu_config(): SGIs/PPIs deactivated, disabled, PPIs level, default priority.
    guest.write(sgi_base + GICR_ICACTIVER0, GICD_INT_ACTLR_X32)
    guest.write(sgi_base + GICR_ICENABLER0, GICD_INT_EN_CLR_X32)
    guest.write(sgi_base + GICR_ICFGR0 + 4, 0)
    for i in range(0, 32, 4):
        guest.write(sgi_base + GICR_IPRIORITYR0 + i, GICD_INT_DEF_PRI_X4)
    assert not guest.read(rbase + GICR_CTLR) & GICR_CTLR_RWP
    # gic_cpu_sys_reg_init()
    guest.msr(cpu, "ICC_SRE_EL1", guest.mrs(cpu, "ICC_SRE_EL1") | ICC_SRE_EL1_SRE)
    assert guest.mrs(cpu, "ICC_SRE_EL1") & ICC_SRE_EL1_SRE
    ctlr = guest.mrs(cpu, "ICC_CTLR_EL1")
    pribits = ((ctlr & ICC_CTLR_EL1_PRI_BITS_MASK) >> ICC_CTLR_EL1_PRI_BITS_SHIFT) + 1
    assert pribits == 5
    # gic_has_group0(): PMR = BIT(8 - pribits) reads back non-zero.
    guest.msr(cpu, "ICC_PMR_EL1", 1 << (8 - pribits))
    assert guest.mrs(cpu, "ICC_PMR_EL1") != 0
    guest.msr(cpu, "ICC_PMR_EL1", DEFAULT_PMR_VALUE)
    guest.msr(cpu, "ICC_BPR1_EL1", 0)
    guest.msr(cpu, "ICC_CTLR_EL1", ICC_CTLR_EL1_EOImode_drop)
    guest.msr(cpu, "ICC_AP0R0_EL1", 0)
    guest.msr(cpu, "ICC_AP1R0_EL1", 0)
    guest.msr(cpu, "ICC_IGRPEN1_EL1", 1)


def boot(guest: Guest) -> int:
    """Everything up to a running system; returns gic_irqs."""
    assert guest.gicd(GICD_PIDR2) & GIC_PIDR2_ARCH_MASK == GIC_PIDR2_ARCH_GICv3
    typer = guest.gicd(GICD_TYPER)
    gic_irqs = min(((typer & 0x1F) + 1) * 32, 1020)  # GICD_TYPER_SPIS
    gic_dist_init(guest, gic_irqs, boot_affinity=0)
    for cpu in range(guest.gic.num_cpus):
        gic_cpu_init(guest, cpu, affinity=cpu)
    return gic_irqs


def test_distributor_identifies_as_gicv3_with_128_lines_and_16_id_bits() -> None:
    guest = make_guest(4)
    typer = guest.gicd(GICD_TYPER)
    assert ((typer & 0x1F) + 1) * 32 == 128
    assert (typer >> 19 & 0x1F) + 1 == 16  # GICD_TYPE_ID_BITS
    assert typer >> 5 & 0x7 == 3  # CPUNumber: four PEs
    ctlr = guest.gicd(GICD_CTLR)
    assert ctlr & GICD_CTLR_DS and ctlr & GICD_CTLR_ARE_NS


def test_linux_boot_then_an_spi_routed_to_cpu1() -> None:
    guest = make_guest(4)
    boot(guest)
    for cpu in range(4):
        assert guest.read(guest.rd(cpu, GICR_WAKER)) & GICR_WAKER_ChildrenAsleep == 0
        assert guest.mrs(cpu, "ICC_BPR1_EL1") == 3  # the minimum with 5 priority bits
        assert guest.mrs(cpu, "ICC_IAR1_EL1") == 1023  # nothing pending anywhere
    # gic_set_affinity() to CPU 1, gic_unmask_irq(): SPI 40 = GIC_SPI 8.
    spi = 40
    guest.gicd(GICD_IROUTER + spi * 8, 1, width=8)
    guest.gicd(GICD_ISENABLER + (spi // 32) * 4, 1 << (spi % 32))
    guest.gic.raise_line(spi)
    assert [guest.gic.pending_irq(cpu) for cpu in range(4)] == [False, True, False, False]
    assert guest.mrs(1, "ICC_HPPIR1_EL1") == spi
    assert guest.mrs(1, "ICC_IAR1_EL1") == spi
    assert guest.mrs(1, "ICC_RPR_EL1") == GICD_INT_DEF_PRI
    assert not guest.gic.pending_irq(1)  # active (and still pending: the level is high)
    guest.gic.lower_line(spi)
    guest.msr(1, "ICC_EOIR1_EL1", spi)  # EOImode_drop: priority drop only
    assert guest.mrs(1, "ICC_RPR_EL1") == 0xFF
    active = guest.gicd(0x0300 + (spi // 32) * 4)  # GICD_ISACTIVER
    assert active == 1 << (spi % 32)
    guest.msr(1, "ICC_DIR_EL1", spi)
    assert guest.gicd(0x0300 + (spi // 32) * 4) == 0
    assert guest.mrs(1, "ICC_IAR1_EL1") == 1023


def test_linux_ipi_to_a_list_and_to_all_but_self() -> None:
    guest = make_guest(4)
    boot(guest)
    for cpu in range(4):  # gic_smp_init(): the IPIs are enabled SGIs 0-7
        guest.write(guest.sgi(cpu, GICR_ISENABLER0), 0xFF)
    # gic_send_sgi(): cluster Aff1 = 0, TargetList = CPUs 2 and 3, SGI 1.
    guest.msr(0, "ICC_SGI1R_EL1", 1 << ICC_SGI1R_SGI_ID_SHIFT | 0b1100)
    assert [guest.gic.pending_irq(cpu) for cpu in range(4)] == [False, False, True, True]
    assert guest.mrs(2, "ICC_IAR1_EL1") == 1
    assert guest.mrs(3, "ICC_IAR1_EL1") == 1
    for cpu in (2, 3):
        guest.msr(cpu, "ICC_EOIR1_EL1", 1)
        guest.msr(cpu, "ICC_DIR_EL1", 1)
    # IRM: every PE but the sender.
    guest.msr(2, "ICC_SGI1R_EL1", 5 << ICC_SGI1R_SGI_ID_SHIFT | 1 << ICC_SGI1R_IRQ_ROUTING_MODE_BIT)
    assert [guest.gic.pending_irq(cpu) for cpu in range(4)] == [True, True, False, True]
    assert [guest.mrs(cpu, "ICC_IAR1_EL1") for cpu in range(4)] == [5, 5, 1023, 5]


def test_virtual_timer_ppi_is_banked_per_cpu() -> None:
    guest = make_guest(2)
    boot(guest)
    guest.write(guest.sgi(1, GICR_ISENABLER0), 1 << 27)
    guest.gic.raise_line(27, cpu=1)  # CNTV on CPU 1
    assert not guest.gic.pending_irq(0)
    assert guest.mrs(0, "ICC_IAR1_EL1") == 1023
    assert guest.mrs(1, "ICC_IAR1_EL1") == 27
    guest.gic.raise_line(27, cpu=0)  # CPU 0's timer PPI is still disabled
    assert not guest.gic.pending_irq(0)
    assert guest.read(guest.sgi(0, 0x0200)) == 1 << 27  # GICR_ISPENDR0: pending, disabled
