"""Guest virtual to guest-physical addresses, by walking the guest's own stage-1 tables.

unicorn's ``mem_read`` takes guest-physical addresses, but an undefined instruction is
reported with a *virtual* PC once the guest's MMU is on.  The VMM needs the instruction
word when it emulates what the CPU model lacks (the GICv3 ICC_* system registers, whose
undefined-instruction syndrome carries no operands), so it translates the PC the way the
MMU does: VMSAv8-64 translation with the granule, size and base register of the half of
the address space the address is in (Arm ARM D8, "The AArch64 Virtual Memory System
Architecture"; ``TCR_EL1`` T0SZ/TG0 for TTBR0, T1SZ/TG1 for TTBR1).  Only reads are
needed and only EL1&0's regime, so permissions and attributes are not looked at; a
translation fault anywhere is None (the guest then takes its undefined instruction).
"""

from __future__ import annotations

from collections.abc import Callable

from sel4vmm.backends.unicorn.engine import AArch64Engine

#: System registers as (op0, op1, CRn, CRm, op2).
SCTLR_EL1 = (3, 0, 1, 0, 0)
TTBR0_EL1 = (3, 0, 2, 0, 0)
TTBR1_EL1 = (3, 0, 2, 0, 1)
TCR_EL1 = (3, 0, 2, 0, 2)

#: TCR_EL1.TG0 and TG1 encode the granule differently (Arm ARM, TCR_EL1).
_TG0_BITS = {0b00: 12, 0b01: 16, 0b10: 14}
_TG1_BITS = {0b10: 12, 0b11: 16, 0b01: 14}
#: Output address bits [47:12] of a descriptor or a TTBR (48-bit physical addresses).
_ADDRESS_MASK = 0x0000_FFFF_FFFF_F000


def translate(uc: AArch64Engine, read_u64: Callable[[int], int | None], virtual: int) -> int | None:
    """The guest-physical address of ``virtual`` under the guest's EL1&0 tables, or None.

    ``read_u64(ipa)`` reads a descriptor from guest RAM (None where there is none).
    """
    if not int(uc.cpr_read(*SCTLR_EL1)) & 1:
        return virtual  # the MMU is off: addresses are flat
    tcr = int(uc.cpr_read(*TCR_EL1))
    upper = bool(virtual >> 55 & 1)
    if upper:
        size_offset, granule = tcr >> 16 & 0x3F, _TG1_BITS.get(tcr >> 30 & 3)
        base = int(uc.cpr_read(*TTBR1_EL1))
    else:
        size_offset, granule = tcr & 0x3F, _TG0_BITS.get(tcr >> 14 & 3)
        base = int(uc.cpr_read(*TTBR0_EL1))
    if granule is None or not 16 <= size_offset <= 39:
        return None
    address_bits = 64 - size_offset
    offset_in_region = virtual & ((1 << address_bits) - 1)
    top = virtual >> address_bits
    if top != ((1 << size_offset) - 1 if upper else 0):
        return None  # outside both halves: a translation fault
    stride = granule - 3
    levels = -(-(address_bits - granule) // stride)
    table = base & _ADDRESS_MASK & ~((1 << granule) - 1)
    for level in range(4 - levels, 4):
        shift = granule + stride * (3 - level)
        index = offset_in_region >> shift & ((1 << stride) - 1)
        descriptor = read_u64(table + 8 * index)
        if descriptor is None or not descriptor & 1:
            return None
        output = descriptor & _ADDRESS_MASK & ~((1 << granule) - 1)
        if level == 3:
            if not descriptor & 2:
                return None  # reserved at level 3
            return output | virtual & ((1 << granule) - 1)
        if not descriptor & 2:  # a block
            block = (1 << shift) - 1
            return (descriptor & _ADDRESS_MASK & ~block) | virtual & block
        table = output
    return None
