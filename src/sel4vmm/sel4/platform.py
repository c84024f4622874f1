"""A booted seL4 platform: the kernel's untyped objects and the system builder's hand-out.

At boot seL4 turns every free physical range into maximal aligned untyped objects (device
ranges into device untyped).  The system builder (CAmkES's capDL loader, the Microkit
tool) then carves the objects each component was promised out of those: the pools
(``simple_untyped24_pool = 33``), untyped at fixed addresses (``untyped_mmios``) and
device frames (``mmios``).  :class:`Sel4Platform` plays both parts, so that two VMs get
disjoint memory exactly as they would on the board.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from functools import partial

from sel4vmm.errors import ResourceExhausted, Sel4VmmError
from sel4vmm.sel4.allocator import ObjectAllocator
from sel4vmm.sel4.arch import Arch
from sel4vmm.sel4.cspace import CSpace
from sel4vmm.sel4.objects import ObjectKind, ObjectRun, human_size
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.undo import UndoLog
from sel4vmm.sel4.untyped import Untyped, aligned_blocks


def _subtract(start: int, end: int, holes: list[MemoryRange]) -> list[tuple[int, int]]:
    """``[start, end)`` minus every hole, as sorted pieces."""
    pieces = [(start, end)]
    for hole in holes:
        pieces = (
            [
                piece
                for lo, hi in pieces
                for piece in ((lo, min(hi, hole.base)), (max(lo, hole.end), hi))
                if piece[0] < piece[1]
            ]
            if any(hole.base < hi and lo < hole.end for lo, hi in pieces)
            else pieces
        )
    return pieces


def boot_untypeds(
    physmem: PhysicalMemory,
    arch: Arch,
    reserved: Iterable[MemoryRange] = (),
    device_reserved: Iterable[MemoryRange] = (),
) -> list[Untyped]:
    """The untyped objects seL4 creates at boot for the free parts of ``physmem``.

    ``reserved`` ranges (the kernel image, firmware) get no untyped at all;
    ``device_reserved`` RAM (a ``reserved-memory`` node, such as seL4's
    ``overlay-reserve-vm-memory.dts``) becomes *device* untyped, which is how RAM meant
    for 1:1 guest mappings reaches a VMM as ``untyped_mmios``.
    """
    return boot_untypeds_of_ram(physmem.ram_ranges, arch, reserved, device_reserved)


def boot_untypeds_of_ram(
    ram_ranges: Iterable[MemoryRange],
    arch: Arch,
    reserved: Iterable[MemoryRange] = (),
    device_reserved: Iterable[MemoryRange] = (),
) -> list[Untyped]:
    """:func:`boot_untypeds` from the RAM ranges alone (no host memory is needed)."""
    ram_ranges = list(ram_ranges)
    carved = sorted(device_reserved, key=lambda r: r.base)
    holes = sorted([*reserved, *carved], key=lambda r: r.base)
    untypeds: list[Untyped] = []

    def add(start: int, end: int, device: bool, label: str) -> None:
        for paddr, bits in aligned_blocks(start, end, arch.max_untyped_bits, arch.min_untyped_bits):
            untypeds.append(Untyped(paddr, bits, device, label=label))

    for rng in ram_ranges:
        for start, end in _subtract(rng.base, rng.end, holes):
            add(start, end, False, rng.name or "boot")
    # seL4 hands out everything that is not RAM as device untyped, up to the physical
    # address limit, in maximal aligned blocks: device windows the board table lists do
    # not split them, and a device it does not list is still reachable.
    known = sorted([*ram_ranges, *holes], key=lambda r: r.base)
    for start, end in _subtract(0, 1 << arch.guest_address_bits, known):
        add(start, end, True, "device memory")
    for rng in carved:
        add(rng.base, rng.end, True, rng.name or "reserved-memory")
    return untypeds


class Sel4Platform:
    """A board running seL4: physical memory, boot untypeds, and the system builder."""

    def __init__(
        self,
        physmem: PhysicalMemory,
        arch: Arch,
        *,
        reserved: Iterable[MemoryRange] = (),
        device_reserved: Iterable[MemoryRange] = (),
        board_name: str = "board",
        growth_advice: str | None = None,
        fix_language: str = "camkes",
    ) -> None:
        self.physmem = physmem
        self.arch = arch
        self.board_name = board_name
        self.undo = UndoLog()
        self.cspace = CSpace(self.undo)
        self.root = ObjectAllocator(
            arch,
            self.cspace,
            self.undo,
            owner=f"{board_name} RAM",
            growth_advice=growth_advice
            or "give the board more RAM or ask for fewer/smaller untyped objects",
        )
        self.root.fix_language = fix_language
        for untyped in boot_untypeds(physmem, arch, reserved, device_reserved):
            self.root.add_untyped(untyped)
        self._device_frames: dict[tuple[int, int, int], ObjectRun] = {}

    def hold_fixed(self, base: int, size: int, label: str) -> None:
        """Keep ``[base, base + size)`` of kernel RAM for an object placed there later.

        The Microkit tool and the capDL loader make fixed-address objects first and put
        ordinary objects around them (``allocation.rs``: ordinary objects fill each untyped
        up to the next fixed address).  A planner that builds one VM after another must
        not let the first VM's kernel objects land on the second VM's ``phys_addr``
        RAM, so the range is split off now: the covering boot untyped is padded up to it
        (the padding stays usable), the range itself becomes held untyped that only
        :meth:`ObjectAllocator.retype_at` uses, and the rest after it is padding again.
        Ranges that are not free kernel RAM are left alone; placing them later reports
        what is wrong with them.
        """
        end = base + size
        cursor = base
        with self.undo.transaction():
            while cursor < end:
                untyped = self.root.covering(cursor)
                if untyped is None or untyped.device or untyped.held:
                    return
                if untyped.watermark > cursor - untyped.paddr:
                    return
                stop = min(end, untyped.end)
                if untyped.watermark < cursor - untyped.paddr:
                    self.root.pad(untyped, untyped.paddr + untyped.watermark, cursor)
                self.root.pad(untyped, cursor, stop, held=True, label=label)
                if stop < untyped.end:
                    self.root.pad(untyped, stop, untyped.end)
                cursor = stop

    def carve_untyped(self, size_bits: int, count: int, label: str) -> list[Untyped]:
        """``count`` RAM untyped objects of ``2**size_bits`` for a component's pool."""
        self._check_untyped_bits(size_bits)
        runs = self.root.retype(ObjectKind.UNTYPED, size_bits, count)
        return [
            Untyped(run.paddr_of(i), size_bits, False, label=label, parent=run.untyped)
            for run in runs
            for i in range(run.count)
        ]

    def carve_untyped_at(self, paddr: int, size_bits: int, label: str) -> Untyped:
        """The untyped of ``2**size_bits`` at ``paddr`` (``untyped_mmios``)."""
        self._check_untyped_bits(size_bits)
        if paddr % (1 << size_bits):
            raise Sel4VmmError(
                f"untyped {paddr:#x}:{size_bits} is not aligned to its size",
                fix=f"use an address that is a multiple of {1 << size_bits:#x}",
            )
        run = self.root.retype_at(ObjectKind.UNTYPED, paddr, size_bits, 1)[0]
        # Always device memory: inside the RAM range too, because the system reserves that
        # RAM from the kernel (an overlay like overlay-reserve-vm-memory.dts) and hands it
        # out as device untyped, which the VMM may use to back guest RAM 1:1.
        return Untyped(paddr, size_bits, True, label=label, parent=run.untyped)

    def carve_frames_at(self, paddr: int, size: int, page_bits: int) -> ObjectRun:
        """Device frames covering ``[paddr, paddr + size)`` (``mmios``).

        The same window asked for again (every VM's GIC vCPU interface, a device two
        components share) gets the same frames: the caller receives its own record to
        hold its own cap copies, not a second set of frames, which could not exist.
        """
        key = (paddr, size, page_bits)
        made = self._device_frames.get(key)
        if made is not None:
            return replace(made, first_cptr=0, mapped=None)
        page = 1 << page_bits
        if page_bits not in self.arch.page_bits:
            raise Sel4VmmError(
                f"mmio {paddr:#x}:{size:#x}:{page_bits}: {self.arch.name} has no "
                f"{page_bits}-bit frames",
                fix=f"use one of {', '.join(str(b) for b in self.arch.page_bits)}",
            )
        if paddr % page or size % page or size <= 0:
            raise Sel4VmmError(
                f"mmio {paddr:#x}:{size:#x}:{page_bits} is not a whole number of "
                f"{human_size(page)} frames",
                fix=f"align address and size to {page:#x}",
            )
        runs = self.root.retype_at(ObjectKind.FRAME, paddr, page_bits, size // page)
        first = runs[0]
        run = ObjectRun(
            ObjectKind.FRAME, paddr, page_bits, size // page, 0, first.untyped, first.device
        )
        self._device_frames[key] = run
        self.undo.record(partial(self._device_frames.__delitem__, key))
        return replace(run)

    def _check_untyped_bits(self, size_bits: int) -> None:
        low, high = self.arch.min_untyped_bits, self.arch.max_untyped_bits
        if not low <= size_bits <= high:
            raise ResourceExhausted(
                f"untyped objects of 2^{size_bits} bytes do not exist on {self.arch.name}",
                fix=f"use a size between 2^{low} and 2^{high}",
            )
