"""The kernel configuration a system description is checked against.

A ``.system`` file is only valid *for a kernel*: the architecture decides which ``<irq>``
forms and ``<ioport>`` are legal and how high a mapping may go, hypervisor mode decides
whether ``<virtual_machine>`` is allowed and (on AArch64) how big the address space is,
the core count bounds ``cpu=``, and the domain limits bound ``<domains>``.  The Microkit
tool reads these from the SDK's kernel config; we take them from the command line with
the same defaults the tool's own test suite uses (one core, FPU, IOMMU, 16 domains, 100
schedule entries, 40-bit IPA on AArch64).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sel4vmm.errors import Sel4VmmError

#: Frame sizes a memory region may use (``page_size=``); 1 GiB frames are not offered.
PAGE_SIZES = (0x1000, 0x200_000)

#: The tool's display names, used in messages such as "not supported on AArch64".
ARCH_DISPLAY_NAMES = {"aarch64": "AArch64", "riscv64": "RISC-V (64-bit)", "x86_64": "x86-64"}

#: Start of the topmost user page (``seL4_UserVSpaceTop`` rounded down to a page) per
#: (architecture, hypervisor).  PD stacks are placed just below it; VM maps end at it.
_USER_TOP = {
    ("aarch64", True): 0xFF_FFFF_F000,  # stage-2 translation with a 40-bit IPA
    ("aarch64", False): 0x7FFF_FFFF_F000,
    ("riscv64", True): 0x3F_FFFF_F000,  # Sv39
    ("riscv64", False): 0x3F_FFFF_F000,
    ("x86_64", True): 0x7FFF_FFFF_E000,
    ("x86_64", False): 0x7FFF_FFFF_E000,
}

#: The highest I/O virtual address seL4's x86 IOMMU page tables reach (39 bits).
MAX_IOVA = (1 << 39) - 1


@dataclass(frozen=True)
class MicrokitTarget:
    """Architecture and kernel options that change what a system description may say."""

    arch: str = "aarch64"
    hypervisor: bool = True
    num_cores: int = 1
    iommu: bool = True
    num_domains: int = 16
    num_domain_schedules: int = 100
    #: Whether the kernel forwards SMC calls (AArch64 only; ``None`` elsewhere).
    arm_smc: bool | None = None
    #: The tool's ``MAX_PDS`` (63: PD ids must fit the monitor's badge).  Only scale
    #: experiments (the check benchmark) raise it.
    max_pds: int = 63
    #: Directories ``prefill_path`` is looked up in, in order.
    search_paths: tuple[Path, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.arch not in ARCH_DISPLAY_NAMES:
            raise Sel4VmmError(
                f"unknown architecture '{self.arch}'",
                fix=f"use one of {', '.join(sorted(ARCH_DISPLAY_NAMES))}",
            )

    @property
    def display_name(self) -> str:
        return ARCH_DISPLAY_NAMES[self.arch]

    @property
    def page_sizes(self) -> tuple[int, ...]:
        return PAGE_SIZES

    @property
    def user_top(self) -> int:
        """Start of the highest user page; nothing may be mapped at or above it."""
        return _USER_TOP[(self.arch, self.hypervisor)]

    def pd_map_max_vaddr(self, stack_size: int) -> int:
        """Exclusive limit for a PD's ``vaddr``: the stack sits at the very top of the
        address space below one guard page, so maps must stay beneath it."""
        return self.user_top - self.page_sizes[0] - stack_size

    def vm_map_max_vaddr(self) -> int:
        """Exclusive limit for a VM map: guests have no stack, the whole space is theirs."""
        return self.user_top

    @property
    def max_io_address_end(self) -> int:
        return MAX_IOVA + 1
