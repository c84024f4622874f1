"""The kernel configuration a system description is checked against.

A ``.system`` file is only valid *for a kernel*: the architecture decides which ``<irq>``
forms and ``<ioport>`` are legal and how high a mapping may go, hypervisor mode decides
whether ``<virtual_machine>`` is allowed and (on AArch64, with the physical-address size)
how big a guest's address space is, the core count bounds ``cpu=``, whether the kernel
forwards SMC calls decides ``smc="true"``, and the domain limits bound ``<domains>``.

The Microkit tool reads these from the SDK's kernel configuration (``tool/microkit/src/
main.rs`` builds its ``sel4::Config`` from the board's ``kernel/gen_config.json``); the
fields here carry the same names.  The dataclass defaults are those of the tool's own test
suite (``DEFAULT_AARCH64_KERNEL_CONFIG`` in ``tool/microkit/tests/test.rs``) except
``arm_smc``, which defaults to what every AArch64 SDK board is built with
(``KernelAllowSMCCalls``); per-board SDK defaults are in :mod:`.sdk_boards`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sel4vmm.config.microkit.versions import DEFAULT_VERSION, MicrokitVersion
from sel4vmm.errors import Sel4VmmError

#: Frame sizes a memory region may use (``page_size=``); 1 GiB frames are not offered.
PAGE_SIZES = (0x1000, 0x200_000)

#: The tool's display names, used in messages such as "not supported on AArch64".
ARCH_DISPLAY_NAMES = {"aarch64": "AArch64", "riscv64": "RISC-V (64-bit)", "x86_64": "x86-64"}

#: The highest I/O virtual address seL4's x86 IOMMU page tables reach (39 bits).
MAX_IOVA = (1 << 39) - 1

#: Physical-address sizes seL4 builds AArch64 for (``KernelArmPASizeBits40``/``44``).
ARM_PA_SIZE_BITS = (40, 44)


def vspace_user_top(arch: str, hypervisor: bool, arm_pa_size_bits: int | None) -> int:
    """``seL4_UserVSpaceTop``: the *last* user virtual address (inclusive), as the tool's
    ``address_space_constants`` give it.  AArch64 with hypervisor support translates guest
    addresses with stage 2, so the space is the IPA size (test.rs: ``0xffffffffff`` for a
    40-bit PA); x86-64 stops one page below the canonical hole (test.rs: ``0x7fffffffefff``).
    """
    if arch == "aarch64":
        if hypervisor:
            return (1 << (arm_pa_size_bits or 40)) - 1
        return 0x7FFF_FFFF_FFFF
    if arch == "riscv64":
        return 0x3F_FFFF_FFFF  # Sv39
    return 0x7FFF_FFFF_EFFF


@dataclass(frozen=True)
class MicrokitTarget:
    """The kernel options (the tool's ``sel4::Config``) that change what a system may say."""

    arch: str = "aarch64"
    #: main.rs never sets it on RISC-V; the tool's tests still may (they override only
    #: ``arch``), so it is kept as given -- :mod:`.sdk_boards` gives RISC-V boards False.
    hypervisor: bool = True
    num_cores: int = 1
    iommu: bool = True
    num_domains: int = 16
    num_domain_schedules: int = 100
    fpu: bool = True
    #: Whether the kernel forwards SMC calls: True/False on AArch64 (``ALLOW_SMC_CALLS``),
    #: None elsewhere (forced), or None on AArch64 for a configuration that does not say.
    arm_smc: bool | None = True
    #: AArch64 only: 40 or 44 (``ARM_PA_SIZE_BITS_40``/``_44``); None elsewhere (forced).
    arm_pa_size_bits: int | None = 40
    #: The tool's ``MAX_PDS`` (63: PD ids must fit the monitor's badge).  Only scale
    #: experiments (the check benchmark) raise it.
    max_pds: int = 63
    #: Directories ``prefill_path`` is looked up in, in order.
    search_paths: tuple[Path, ...] = field(default_factory=tuple)
    #: Which Microkit release's rules apply.
    microkit: MicrokitVersion = DEFAULT_VERSION
    #: The SDK board this configuration is for, when one was named (messages only).
    board: str | None = None
    #: Planning only (:mod:`.legacy`): read a pre-release ``<virtual_machine id="N">`` as
    #: its single vCPU N.  No Microkit release accepts it, so ``check`` never sets this.
    accept_vm_id: bool = False

    def __post_init__(self) -> None:
        if self.arch not in ARCH_DISPLAY_NAMES:
            raise Sel4VmmError(
                f"unknown architecture '{self.arch}'",
                fix=f"use one of {', '.join(sorted(ARCH_DISPLAY_NAMES))}",
            )
        if self.arch != "aarch64":
            # The tool's Config has these only on ARM (main.rs: None on x86-64/RISC-V).
            object.__setattr__(self, "arm_smc", None)
            object.__setattr__(self, "arm_pa_size_bits", None)
        elif self.arm_pa_size_bits not in ARM_PA_SIZE_BITS:
            raise Sel4VmmError(
                f"unsupported AArch64 physical-address size {self.arm_pa_size_bits} bits",
                fix="seL4 builds AArch64 for 40 or 44 physical-address bits",
            )
        if not 1 <= self.num_cores <= 255:
            raise Sel4VmmError(
                f"unsupported core count {self.num_cores}",
                fix="seL4 is built for 1 to 255 cores (the tool keeps the count in a u8)",
            )

    @property
    def display_name(self) -> str:
        return ARCH_DISPLAY_NAMES[self.arch]

    @property
    def page_sizes(self) -> tuple[int, ...]:
        return PAGE_SIZES

    @property
    def vspace_user_top(self) -> int:
        """The last user virtual address (inclusive), ``seL4_UserVSpaceTop``."""
        return vspace_user_top(self.arch, self.hypervisor, self.arm_pa_size_bits)

    @property
    def user_top(self) -> int:
        """Start of the highest user page: a PD's IPC buffer lives there."""
        return self.vspace_user_top & ~(self.page_sizes[0] - 1)

    def pd_map_max_vaddr(self, stack_size: int) -> int:
        """Exclusive limit for a PD's ``vaddr``: the IPC buffer takes the top page, a guard
        page sits below it, the stack below that; maps must stay beneath the stack."""
        return self.user_top - self.page_sizes[0] - stack_size

    def vm_map_max_vaddr(self) -> int:
        """Exclusive limit for a VM map: guests have no stack or IPC buffer, the whole
        space up to and including ``seL4_UserVSpaceTop`` is theirs."""
        return self.vspace_user_top + 1

    @property
    def max_io_address_end(self) -> int:
        return MAX_IOVA + 1
