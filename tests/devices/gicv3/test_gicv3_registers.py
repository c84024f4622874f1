"""Distributor and redistributor registers through the fault path (ARM IHI 0069, the
GICD_* and GICR_* register descriptions)."""

from __future__ import annotations

import pytest

from sel4vmm.devices.gicv3 import Gicv3, Gicv3Layout
from sel4vmm.errors import AddressSpaceError, Sel4VmmError
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.devices.gicv3.harness import GICD, GICR, STRIDE, make_guest
from tests.helpers import make_platform

ISENABLER = 0x100
ISPENDR = 0x200
ICPENDR = 0x280
ISACTIVER = 0x300
ICACTIVER = 0x380
IPRIORITYR = 0x400
ICFGR = 0xC00
IROUTER = 0x6000
PIDR2 = 0xFFE8


def test_pidr2_arch_rev_is_3_in_every_frame() -> None:
    guest = make_guest(2)
    # IHI 0069, GICD_PIDR2/GICR_PIDR2: ArchRev, bits [7:4], 0x3 = GICv3.
    assert guest.gicd(PIDR2) >> 4 & 0xF == 0x3
    assert all(guest.read(guest.rd(cpu, PIDR2)) >> 4 & 0xF == 0x3 for cpu in range(2))


def test_private_interrupt_words_of_the_distributor_are_raz_wi() -> None:
    guest = make_guest(2)
    guest.gicd(ISENABLER, 0xFFFF_FFFF)
    guest.gicd(IPRIORITYR, 0xA0A0_A0A0)
    assert guest.gicd(ISENABLER) == 0
    assert guest.gicd(IPRIORITYR) == 0
    assert guest.read(guest.sgi(0, ISENABLER)) == 0
    assert guest.read(guest.sgi(0, IPRIORITYR)) == 0
    guest.gicd(IROUTER + 8 * 31, 0xFF, width=8)
    assert guest.gicd(IROUTER + 8 * 31, width=8) == 0


def test_priority_bytes_and_five_implemented_bits() -> None:
    guest = make_guest(1)
    guest.gicd(IPRIORITYR + 41, 0xA0, width=1)
    assert guest.gicd(IPRIORITYR + 40) == 0xA000
    guest.gicd(IPRIORITYR + 42, 0xFF, width=1)
    assert guest.gicd(IPRIORITYR + 42, width=1) == 0xF8  # low 3 bits RAZ/WI (PRIbits 5)
    assert guest.gicd(IPRIORITYR + 40, width=2) == 0xA000
    guest.write(guest.sgi(0, IPRIORITYR + 27), 0x80, width=1)
    assert guest.read(guest.sgi(0, IPRIORITYR + 24)) == 0x8000_0000


def test_irouter_64_bit_and_as_halves() -> None:
    guest = make_guest(1)
    guest.gicd(IROUTER + 8 * 33, 0x8000_0000)  # low half: Interrupt_Routing_Mode
    guest.gicd(IROUTER + 8 * 33 + 4, 0x1)  # high half: Aff3
    assert guest.gicd(IROUTER + 8 * 33, width=8) == 0x1_8000_0000
    guest.gicd(IROUTER + 8 * 34, (1 << 64) - 1, width=8)
    # Bits 63:40 and 30:24 are RES0.
    assert guest.gicd(IROUTER + 8 * 34, width=8) == 0xFF_80FF_FFFF


def test_icfgr_edge_bits_and_read_only_sgi_configuration() -> None:
    guest = make_guest(1)
    guest.gicd(ICFGR + 8, 0b10 << 2)  # INTID 33 edge-triggered
    assert guest.gicd(ICFGR + 8) == 0b10 << 2
    assert guest.read(guest.sgi(0, ICFGR)) == 0xAAAA_AAAA  # SGIs: always edge
    guest.write(guest.sgi(0, ICFGR), 0)
    assert guest.read(guest.sgi(0, ICFGR)) == 0xAAAA_AAAA
    guest.write(guest.sgi(0, ICFGR + 4), 0b10 << 22)  # PPI 27 edge
    assert guest.read(guest.sgi(0, ICFGR + 4)) == 0b10 << 22


def test_redistributor_typer_affinity_number_and_last() -> None:
    affinities = [0x000, 0x001, 0x100, 0x101]  # two clusters of two
    guest = make_guest(4, affinities=affinities)
    typers = [guest.read(guest.rd(cpu, 0x8), 8) for cpu in range(4)]
    assert [t >> 32 for t in typers] == affinities
    assert [t >> 8 & 0xFFFF for t in typers] == [0, 1, 2, 3]
    assert [bool(t & 1 << 4) for t in typers] == [False, False, False, True]
    assert guest.read(guest.rd(2, 0xC)) == 0x100  # upper half alone


def test_waker_handshake_starts_asleep() -> None:
    guest = make_guest(1)
    waker = guest.rd(0, 0x14)
    assert guest.read(waker) == 0b110  # ProcessorSleep, ChildrenAsleep
    guest.write(waker, 0)
    assert guest.read(waker) == 0
    guest.write(waker, 0b10)
    assert guest.read(waker) == 0b110


def test_set_clear_pending_and_active_registers() -> None:
    guest = make_guest(1)
    guest.gicd(ISPENDR + 4, 1 << 3)  # INTID 35
    guest.gicd(ISACTIVER + 4, 1 << 4)
    assert guest.gicd(ISPENDR + 4) == 1 << 3 and guest.gicd(ICPENDR + 4) == 1 << 3
    assert guest.gicd(ISACTIVER + 4) == 1 << 4 and guest.gicd(ICACTIVER + 4) == 1 << 4
    guest.gicd(ICPENDR + 4, 1 << 3)
    guest.gicd(ICACTIVER + 4, 1 << 4)
    assert guest.gicd(ISPENDR + 4) == 0 and guest.gicd(ISACTIVER + 4) == 0


def test_icpendr_does_not_clear_an_asserted_level_interrupt() -> None:
    guest = make_guest(1)
    guest.gic.raise_line(36)  # level-sensitive by default (ICFGR reset 0)
    guest.gicd(ICPENDR + 4, 1 << 4)
    assert guest.gicd(ISPENDR + 4) == 1 << 4
    guest.gic.lower_line(36)
    assert guest.gicd(ISPENDR + 4) == 0


def test_unknown_offsets_read_zero_and_ignore_writes() -> None:
    guest = make_guest(1)
    before = guest.gic.state.spis[0]
    for offset in (0x0F00, 0x0800, 0x0020, 0x8000, 0xFFFC):
        guest.gicd(offset, 0xFFFF_FFFF)
        assert guest.gicd(offset) == 0
    assert guest.read(guest.rd(0, 0x70), 8) == 0  # GICR_PROPBASER: no LPIs
    assert guest.gic.state.spis[0] == before


@pytest.mark.parametrize(("offset", "width"), [(0x102, 4), (0x101, 2), (0x104, 8), (0x100, 16)])
def test_misaligned_or_oversized_access_stops_the_vm(offset: int, width: int) -> None:
    guest = make_guest(1)
    fault = MemoryFault(GICD + offset, width, False)
    assert guest.vm.memory.handle_fault(fault) is FaultResult.ERROR


def test_attach_is_all_or_nothing_and_checks_the_region_size() -> None:
    guest = make_guest(1)
    second = Gicv3(2)
    with pytest.raises(Sel4VmmError, match="redistributor space for 1 PE"):
        second.attach(guest.vm, Gicv3Layout(0x0900_0000, ((0x0910_0000, STRIDE),)))
    count = len(guest.vm.memory)
    # The distributor fits, the redistributors overlap the first GIC's: nothing is kept.
    with pytest.raises(AddressSpaceError, match="overlaps"):
        second.attach(guest.vm, Gicv3Layout(0x0900_0000, ((GICR, 2 * STRIDE),)))
    assert len(guest.vm.memory) == count
    assert guest.vm.memory.find(0x0900_0000) is None


def test_two_redistributor_regions() -> None:
    vm = VirtualMachine.create("vm0", make_platform(ram_size=256 << 20), pools=[PoolRequest(24, 4)])
    gic = Gicv3(3)
    layout = Gicv3Layout(GICD, ((GICR, 2 * STRIDE), (0x0900_0000, STRIDE)))
    gic.attach(vm, layout)
    assert layout.redistributor_base(2) == 0x0900_0000
    fault = MemoryFault(0x0900_0000 + 0x8, 8, False)
    assert vm.memory.handle_fault(fault) is FaultResult.HANDLED
    assert fault.read_value is not None
    assert fault.read_value >> 32 == 2 and fault.read_value & 1 << 4  # PE 2, Last
    fault = MemoryFault(GICR + STRIDE + 0x8, 8, False)
    vm.memory.handle_fault(fault)
    assert fault.read_value is not None and fault.read_value & 1 << 4  # last of region 0
