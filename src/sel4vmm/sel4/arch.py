"""Architecture facts that decide object sizes, page sizes and paging-structure shapes.

The numbers are seL4's own constants (``seL4_PageBits``, ``seL4_LargePageBits``,
``seL4_HugePageBits``, ``seL4_MinUntypedBits``, ``seL4_MaxUntypedBits``, ``seL4_TCBBits``,
``seL4_VCPUBits``, ``seL4_VSpaceBits``) for the configurations VMs run in: AArch64 with the
hypervisor extensions and a 40-bit IPA, x86_64 with VT-x/EPT, RISC-V 64 (Sv39).
"""

from __future__ import annotations

from dataclasses import dataclass

from sel4vmm.errors import Sel4VmmError


@dataclass(frozen=True)
class Arch:
    """One architecture as seL4 sees it."""

    name: str
    #: Frame sizes in bits, smallest first (4 KiB, 2 MiB, 1 GiB).
    page_bits: tuple[int, ...]
    min_untyped_bits: int
    max_untyped_bits: int
    #: Size in bits of the region one paging structure covers, root first.  A frame of
    #: ``b`` bits is mapped into the deepest structure whose entries are ``b`` bits wide,
    #: and needs every structure above it.
    table_coverage_bits: tuple[int, ...]
    table_bits: int
    vspace_bits: int
    tcb_bits: int
    vcpu_bits: int
    #: Guest-physical (IPA / GPA) address width of the stage-2 / EPT translation.
    guest_address_bits: int
    word_bits: int = 64

    @property
    def page_size(self) -> int:
        return 1 << self.page_bits[0]

    def entry_bits(self, level: int) -> int:
        """Bits covered by one entry of a table at ``level`` (0 is the root)."""
        if level + 1 < len(self.table_coverage_bits):
            return self.table_coverage_bits[level + 1]
        return self.page_bits[0]

    def levels_for_frame(self, size_bits: int) -> tuple[int, ...]:
        """Coverage bits of the non-root tables a frame of ``size_bits`` needs above it."""
        if size_bits not in self.page_bits:
            raise Sel4VmmError(
                f"{self.name} has no {size_bits}-bit frames",
                fix=f"use one of {', '.join(str(b) for b in self.page_bits)} bits",
            )
        return tuple(c for c in self.table_coverage_bits[1:] if c > size_bits)


AARCH64 = Arch(
    name="aarch64",
    page_bits=(12, 21, 30),
    min_untyped_bits=4,
    max_untyped_bits=47,
    # 40-bit IPA, 4 KiB granule: concatenated level-1 root (8 KiB), level-2, level-3.
    table_coverage_bits=(40, 30, 21),
    table_bits=12,
    vspace_bits=13,
    tcb_bits=11,
    vcpu_bits=12,
    guest_address_bits=40,
)

X86_64 = Arch(
    name="x86_64",
    page_bits=(12, 21, 30),
    min_untyped_bits=4,
    max_untyped_bits=47,
    # EPT: PML4 -> PDPT -> PD -> PT.
    table_coverage_bits=(48, 39, 30, 21),
    table_bits=12,
    vspace_bits=12,
    tcb_bits=11,
    vcpu_bits=14,
    guest_address_bits=48,
)

RISCV64 = Arch(
    name="riscv64",
    page_bits=(12, 21, 30),
    min_untyped_bits=4,
    max_untyped_bits=38,
    # Sv39: three levels of 4 KiB tables.
    table_coverage_bits=(39, 30, 21),
    table_bits=12,
    vspace_bits=12,
    tcb_bits=10,
    vcpu_bits=12,
    guest_address_bits=39,
)

ARCHES = {a.name: a for a in (AARCH64, X86_64, RISCV64)}


def arch_by_name(name: str) -> Arch:
    """Look an architecture up by the name users write (``aarch64``, ``x86_64``, ``riscv64``)."""
    try:
        return ARCHES[name]
    except KeyError:
        raise Sel4VmmError(
            f"unknown architecture '{name}'", fix=f"use one of {', '.join(sorted(ARCHES))}"
        ) from None
