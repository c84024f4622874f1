"""Paging structures of the guest's stage-2 (EPT) address space.

Mapping a frame into a VM needs every translation table above it: on AArch64 with a 40-bit
IPA a 4 KiB frame needs a level-3 table (one per 2 MiB) and a level-2 table (one per GiB).
These tables come from the same untyped pool as the frames, which is why seed 000's 512 MiB
guest needs a 33rd untyped of 2^24: 32 are eaten by frames, the tables need more.
Tables are kept once made (libsel4vm never frees them either).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from sel4vmm.sel4.allocator import ObjectAllocator, Request
from sel4vmm.sel4.arch import Arch
from sel4vmm.sel4.objects import ObjectKind, ObjectRun
from sel4vmm.sel4.undo import UndoLog


class Stage2Tables:
    """Which translation tables exist in one VM's guest address space."""

    def __init__(self, arch: Arch, allocator: ObjectAllocator, undo: UndoLog) -> None:
        self.arch = arch
        self.allocator = allocator
        self.undo = undo
        #: coverage bits of a table level -> indices (guest_addr >> coverage) present.
        self.present: dict[int, set[int]] = {c: set() for c in arch.table_coverage_bits[1:]}
        self.root: ObjectRun | None = None

    def create_root(self) -> ObjectRun:
        """Retype the VSpace root object (done once, when the VM is created)."""
        self.root = self.allocator.retype(ObjectKind.VSPACE, self.arch.vspace_bits, 1)[0]
        return self.root

    def missing(self, windows: Iterable[tuple[int, int, int]]) -> dict[int, set[int]]:
        """Tables that mapping ``(guest_addr, size, page_bits)`` windows would add."""
        wanted: dict[int, set[int]] = {}
        for guest_addr, size, page_bits in windows:
            if size <= 0:
                continue
            for coverage in self.arch.levels_for_frame(page_bits):
                first = guest_addr >> coverage
                last = (guest_addr + size - 1) >> coverage
                have = self.present[coverage]
                new = {i for i in range(first, last + 1) if i not in have}
                if new:
                    wanted.setdefault(coverage, set()).update(new)
        return wanted

    def allocate_with(
        self, windows: Iterable[tuple[int, int, int]], requests: list[Request]
    ) -> list[list[ObjectRun]]:
        """Retype ``requests`` (frames, say) and the tables ``windows`` need, atomically.

        Frames are placed before tables (largest objects first, as the Microkit tool does)
        so the tables do not fragment the untyped objects the frames need.
        """
        missing = self.missing(windows)
        count = sum(len(v) for v in missing.values())
        batch = list(requests)
        if count:
            batch.append(Request(ObjectKind.PAGE_TABLE, self.arch.table_bits, count))
        with self.undo.transaction():
            results = self.allocator.retype_batch(batch) if batch else []
            for coverage, indices in missing.items():
                self.present[coverage].update(indices)
                self.undo.record(partial(self.present[coverage].difference_update, indices))
        return results[: len(requests)]

    def table_count(self) -> int:
        return sum(len(v) for v in self.present.values())
