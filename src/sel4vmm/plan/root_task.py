"""Seed 002's root-task sizing, as findings with the number that works.

When guest images are embedded in the root task's ELF (CellulOS's ``sel4test-driver``
carries the ``sel4test-tests`` image, which carries Linux, its DTB and initrd), four
limits are met one after the other, each found by trial and error in seed 002:

1. **The root CNode.**  seL4 gives the root task one capability per 4 KiB frame of its
   image, per paging structure that maps it, per boot untyped, after the
   ``seL4_NumInitialCaps`` (16) fixed slots; when they do not fit it stops with
   "can't add another cap, all N (=2^CONFIG_ROOT_CNODE_SIZE_BITS) slots used"
   (seL4/seL4 1326364b ``src/kernel/boot.c`` ``provide_cap``; ``KernelRootCNodeSizeBits``
   defaults to 12 in ``config.cmake``; at most ``KernelMaxNumBootinfoUntypedCaps``, 230,
   untyped caps are given).
2. **The loader's virtual pool.**  The root task maps every page of the ELF it loads into
   its own address space to copy it, so its allocator's virtual pool
   (``ALLOCATOR_VIRTUAL_POOL_SIZE`` in sel4test-driver) must span the image.
3. **The untyped it hands the loaded process** (``TEST_UNTYPED_SIZE``): what the VM then
   allocates from untyped — its RAM frames and paging structures, as the plan built them.
4. **The ELF loader's placement.**  On Odroid-C4 the early-boot ELF loader puts the image
   "somewhere around physical address 0x3000000" and "the secure monitor region starts
   at 0x5000000, so the image cannot extend past this" (seed 002); the secure monitor is
   seL4's ``tools/dts/odroidc4.dts`` ``secmon@5000000``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sel4vmm.boards import Board
from sel4vmm.config.spec import Finding
from sel4vmm.errors import Location
from sel4vmm.sel4.objects import human_size
from sel4vmm.vm import ResourceReport

#: ``seL4_NumInitialCaps`` (libsel4/include/sel4/bootinfo_types.h).
NUM_INITIAL_CAPS = 16
#: ``KernelRootCNodeSizeBits``'s default and 64-bit range (config.cmake: "7-26").
DEFAULT_ROOT_CNODE_BITS = 12
MIN_ROOT_CNODE_BITS, MAX_ROOT_CNODE_BITS = 7, 26
#: ``KernelMaxNumBootinfoUntypedCaps``'s default.
MAX_BOOTINFO_UNTYPED_CAPS = 230
PAGE = 0x1000
#: What one last-level page table, one level-2 and one level-3 table map on AArch64 and
#: x86_64 (4 KiB granule): 2 MiB, 1 GiB, 512 GiB.
_TABLE_SPANS = (1 << 21, 1 << 30, 1 << 39)
#: The bootinfo frame and the IPC buffer frame, mapped beside the image.
_BOOT_FRAMES = 2


@dataclass(frozen=True)
class RootTaskImage:
    """The ELF the early-boot ELF loader loads as the root task (``--loader-image``)."""

    path: str
    #: Bytes from the lowest to the end of the highest loadable segment.
    size: int
    #: Where it starts in the root task's virtual address space.
    vaddr: int = 0x400000


def _covering(start: int, end: int, span: int) -> int:
    return (end - 1) // span - start // span + 1


def root_cnode_slots(image_vaddr: int, image_size: int, boot_untypeds: int) -> int:
    """Root CNode slots seL4 fills at boot for an image of ``image_size`` at ``image_vaddr``."""
    end = image_vaddr + image_size + _BOOT_FRAMES * PAGE
    frames = -(-image_size // PAGE) + _BOOT_FRAMES
    tables = sum(_covering(image_vaddr, end, span) for span in _TABLE_SPANS)
    return NUM_INITIAL_CAPS + frames + tables + min(boot_untypeds, MAX_BOOTINFO_UNTYPED_CAPS)


def cnode_bits_for(slots: int) -> int:
    bits = max(MIN_ROOT_CNODE_BITS, (slots - 1).bit_length())
    return bits


def root_task_findings(
    *,
    image_size: int,
    image_vaddr: int,
    image_path: str,
    board: Board,
    boot_untypeds: int,
    vm_resources: list[ResourceReport],
) -> list[Finding]:
    """The four sizes of seed 002 for a root-task image of ``image_size`` bytes."""
    where = Location(image_path)
    findings: list[Finding] = []
    slots = root_cnode_slots(image_vaddr, image_size, boot_untypeds)
    bits = cnode_bits_for(slots)
    text = (
        f"the root task image {human_size(image_size)} in 4 KiB pages needs {slots} root "
        f"CNode slots (frames, paging structures, {min(boot_untypeds, MAX_BOOTINFO_UNTYPED_CAPS)}"
        f" boot untyped, {NUM_INITIAL_CAPS} initial caps): KernelRootCNodeSizeBits {bits}"
    )
    if bits > MAX_ROOT_CNODE_BITS:
        findings.append(
            Finding(
                "error",
                text + f", beyond the largest root CNode (2^{MAX_ROOT_CNODE_BITS})",
                where,
                "map the image with fewer pages: make it smaller or load it in large pages",
            )
        )
    elif bits > DEFAULT_ROOT_CNODE_BITS:
        findings.append(
            Finding(
                "error",
                text + f"; the default 2^{DEFAULT_ROOT_CNODE_BITS} slots make seL4 stop with "
                f"\"can't add another cap, all {1 << DEFAULT_ROOT_CNODE_BITS} "
                '(=2^CONFIG_ROOT_CNODE_SIZE_BITS) slots used"',
                where,
                f"build seL4 with -DKernelRootCNodeSizeBits={bits} (or more)",
            )
        )
    else:
        findings.append(Finding("note", text + " (the default is enough)", where, None))
    pool = -(-image_size // (1 << 21)) << 21
    findings.append(
        Finding(
            "note",
            f"the root task maps the {human_size(image_size)} image it loads into its own "
            f"address space: its allocator's virtual pool must span at least {human_size(pool)}",
            where,
            f"set the virtual pool (sel4test-driver: ALLOCATOR_VIRTUAL_POOL_SIZE) to at least "
            f"{pool:#x}",
        )
    )
    # Untyped children (pools carved, padding) are not allocations; everything else is.
    need = sum(
        count << size_bits
        for report in vm_resources
        for (kind, size_bits), count in report.objects.items()
        if kind != "untyped"
    )
    if need:
        rounded = 1 << (need - 1).bit_length()
        findings.append(
            Finding(
                "note",
                f"the loaded process allocates {human_size(need)} from untyped for its VMs "
                "(RAM frames, paging structures, TCBs, VCPUs) as planned here",
                where,
                f"hand it at least {need:#x} bytes of untyped (sel4test-driver: "
                f"TEST_UNTYPED_SIZE, e.g. one untyped of 2^{rounded.bit_length() - 1})",
            )
        )
    base = board.elfloader_image_base
    if base is not None:
        end = base + image_size
        for region in board.reserved_memory:
            if base < region.end and region.base < end:
                room = region.base - base
                findings.append(
                    Finding(
                        "error",
                        f"the ELF loader puts the {human_size(image_size)} image at {base:#x} on "
                        f"{board.name}, so it runs into {region.name} at [{region.base:#x}, "
                        f"{region.end:#x})",
                        where,
                        f"keep the image under {room:#x} bytes ({human_size(room)}), or have "
                        f"the ELF loader place it at or above {region.end:#x} "
                        "(seL4_tools elfloader-tool/src/common.c)",
                    )
                )
    return findings
