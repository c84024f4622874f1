"""What image placement works with: guest RAM windows, a placement request, placed images
and the plan with its findings, plus the boot protocols' alignment and size limits.

Kept apart from :mod:`.placement` (the rules that choose and check addresses) so the
loader, the boot state and the backends can use these shapes without the planner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sel4vmm.config.spec import Finding
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.kernel import KernelRequirements

PAGE = 0x1000
#: arm64 booting.rst: the DTB must be 8-byte aligned and at most 2 MiB.
DTB_ALIGNMENT = 8
DTB_MAX_SIZE = 2 << 20
#: arm64 booting.rst: the kernel's base must be 2 MiB aligned.
ARM64_BASE_ALIGNMENT = 2 << 20
#: arm64 booting.rst: kernel and initrd inside one 1 GiB-aligned window of at most 32 GiB.
ARM64_INITRD_WINDOW_ALIGN = 1 << 30
ARM64_INITRD_WINDOW_MAX = 32 << 30
#: The buffer CAmkES's VM_Arm marks allocated for a generated DTB (``DTB_BUFFER_SIZE``).
CAMKES_GENERATED_DTB_RESERVE = 0x50000


def align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def align_down(value: int, alignment: int) -> int:
    return value // alignment * alignment


@dataclass(frozen=True)
class RamWindow:
    """A guest-physical RAM window (base, size)."""

    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size

    def contains(self, addr: int, size: int) -> bool:
        return self.base <= addr and addr + size <= self.end


@dataclass(frozen=True)
class Placed:
    """One image at its guest-physical address."""

    role: str
    addr: int
    #: Bytes reserved from ``addr`` (a kernel's footprint, a DTB's reserve).
    size: int
    #: Bytes actually copied from the file.
    load_size: int
    configured: bool
    source: str = ""

    @property
    def end(self) -> int:
        return self.addr + self.size

    def overlaps(self, other: Placed) -> bool:
        return self.addr < other.end and other.addr < self.end


@dataclass
class PlacementRequest:
    """Everything placement needs: RAM, the images' requirements, configured addresses."""

    arch: str
    ram: Sequence[RamWindow]
    kernel: KernelRequirements | None = None
    initrd_size: int | None = None
    #: Bytes of boot data: the final DTB (arm) or zero page + command line (x86).
    boot_data_size: int | None = None
    #: Bytes to reserve for the boot data when more than its size (CAmkES generated DTB).
    boot_data_reserve: int | None = None
    kernel_addr: int | None = None
    initrd_addr: int | None = None
    boot_data_addr: int | None = None
    #: Where each configured value was written (keys: ``kernel_entry_addr``, ``initrd_addr``,
    #: ``dtb_addr``, ``ram``, ``kernel``, ``initrd``, ``dtb``).
    locations: Mapping[str, Location] = field(default_factory=dict)
    kernel_source: str = ""
    initrd_source: str = ""
    boot_data_source: str = ""

    @property
    def boot_data_role(self) -> str:
        return "zero page" if self.arch == "x86_64" else "dtb"


@dataclass
class ImagePlan:
    """Where everything goes, the entry point, and every problem found."""

    arch: str
    ram: tuple[RamWindow, ...]
    kernel: Placed | None = None
    initrd: Placed | None = None
    boot_data: Placed | None = None
    entry: int | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def placed(self) -> list[Placed]:
        return [p for p in (self.kernel, self.initrd, self.boot_data) if p is not None]

    def raise_if_errors(self) -> None:
        """Turn the first error into a :class:`Sel4VmmError` (the rest are in the message)."""
        errors = [f for f in self.findings if f.severity == "error"]
        if not errors:
            return
        first = errors[0]
        more = (
            f" (and {len(errors) - 1} more problem(s): "
            + "; ".join(e.message for e in errors[1:])
            + ")"
            if len(errors) > 1
            else ""
        )
        raise Sel4VmmError(first.message + more, location=first.location, fix=first.fix)


def ram_windows(ranges: Sequence[tuple[int, int]]) -> tuple[RamWindow, ...]:
    """RAM windows from ``(base, size)`` pairs, as configuration readers give them."""
    return tuple(RamWindow(base, size) for base, size in ranges)
