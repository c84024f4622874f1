"""Walking a guest's stage-1 tables to find the instruction at a virtual PC.

The tables are built here by the VMSAv8-64 rules (Arm ARM D8: 4 KiB granule, 9 bits per
level, descriptors with bit 0 valid and bit 1 table/page; 16 KiB granule, 11 bits per
level); Linux's arm64 kernel runs on exactly these (Debian's 6.1: 4 KiB pages, 48-bit VAs,
four levels, the kernel in TTBR1's half).
"""

from __future__ import annotations

from typing import Any

from sel4vmm.backends.unicorn.stage1 import SCTLR_EL1, TCR_EL1, TTBR0_EL1, TTBR1_EL1, translate

TABLE, PAGE, BLOCK = 0b11, 0b11, 0b01


class FakeEngine:
    def __init__(self, registers: dict[tuple[int, int, int, int, int], int]) -> None:
        self.registers = registers

    def cpr_read(self, *encoding: int) -> int:
        return self.registers[encoding]  # type: ignore[index]


class Tables:
    """Guest RAM holding translation tables: 8-byte descriptors by address."""

    def __init__(self) -> None:
        self.words: dict[int, int] = {}

    def set(self, table: int, index: int, descriptor: int) -> None:
        self.words[table + 8 * index] = descriptor

    def read(self, address: int) -> int | None:
        return self.words.get(address, 0)


def engine(tcr: int, ttbr0: int = 0, ttbr1: int = 0, mmu: bool = True) -> Any:
    return FakeEngine({SCTLR_EL1: int(mmu), TCR_EL1: tcr, TTBR0_EL1: ttbr0, TTBR1_EL1: ttbr1})


#: T1SZ = 16 (48-bit), TG1 = 0b10 (4 KiB); T0SZ = 25 (39-bit), TG0 = 0b00 (4 KiB).
TCR_4K = 16 << 16 | 0b10 << 30 | 25


def test_mmu_off_is_flat() -> None:
    assert translate(engine(TCR_4K, mmu=False), Tables().read, 0x4008_0000) == 0x4008_0000


def test_a_kernel_address_through_four_levels_and_a_page() -> None:
    ram = Tables()
    va = 0xFFFF_8000_1234_5678
    l0, l1, l2, l3 = 0x4100_0000, 0x4100_1000, 0x4100_2000, 0x4100_3000
    ram.set(l0, va >> 39 & 0x1FF, l1 | TABLE)
    ram.set(l1, va >> 30 & 0x1FF, l2 | TABLE)
    ram.set(l2, va >> 21 & 0x1FF, l3 | TABLE)
    ram.set(l3, va >> 12 & 0x1FF, 0x4020_0000 | PAGE | 1 << 10)  # AF set, attributes ignored
    uc = engine(TCR_4K, ttbr1=l0 | 0xABCD << 48)  # an ASID in TTBR1[63:48]
    assert translate(uc, ram.read, va) == 0x4020_0678
    assert translate(uc, ram.read, va + 0x1000) is None  # no page there


def test_a_2mib_block_at_level_2() -> None:
    ram = Tables()
    va = 0xFFFF_8000_0825_4321
    l0, l1, l2 = 0x4100_0000, 0x4100_1000, 0x4100_2000
    ram.set(l0, va >> 39 & 0x1FF, l1 | TABLE)
    ram.set(l1, va >> 30 & 0x1FF, l2 | TABLE)
    ram.set(l2, va >> 21 & 0x1FF, 0x4060_0000 | BLOCK)
    assert translate(engine(TCR_4K, ttbr1=l0), ram.read, va) == 0x4065_4321


def test_ttbr0_with_a_39_bit_space_starts_at_level_1() -> None:
    ram = Tables()
    va = 0x12_3456_7000
    l1, l2, l3 = 0x4200_0000, 0x4200_1000, 0x4200_2000
    ram.set(l1, va >> 30 & 0x1FF, l2 | TABLE)
    ram.set(l2, va >> 21 & 0x1FF, l3 | TABLE)
    ram.set(l3, va >> 12 & 0x1FF, 0x4030_0000 | PAGE)
    uc = engine(TCR_4K, ttbr0=l1)
    assert translate(uc, ram.read, va + 4) == 0x4030_0004
    assert translate(uc, ram.read, 1 << 39) is None  # past T0SZ: a translation fault


def test_a_16kib_granule_has_11_bits_per_level() -> None:
    ram = Tables()
    # T1SZ = 17 (47-bit), TG1 = 0b01 (16 KiB): levels 1-3, 11 bits each, 14-bit pages.
    tcr = 17 << 16 | 0b01 << 30
    va = 0xFFFF_C000_0123_4567
    l1, l2, l3 = 0x4100_0000, 0x4100_4000, 0x4100_8000
    ram.set(l1, va >> 36 & 0x7FF, l2 | TABLE)
    ram.set(l2, va >> 25 & 0x7FF, l3 | TABLE)
    ram.set(l3, va >> 14 & 0x7FF, 0x4400_0000 | PAGE)
    assert translate(engine(tcr, ttbr1=l1), ram.read, va) == 0x4400_0000 | va & 0x3FFF


def test_descriptors_outside_guest_ram_are_a_fault() -> None:
    def nowhere(_address: int) -> int | None:
        return None

    assert translate(engine(TCR_4K, ttbr1=0x4100_0000), nowhere, 0xFFFF_8000_0000_0000) is None
