"""Frames handed to :meth:`GuestAddressSpace.map`: rights, cap checks, frame iterators.

A map iterator (libsel4vm's ``memory_map_iterator_fn``) returns a ``vm_frame_t`` for an
address; seL4 would refuse to map a null cap, a cap that is not a frame, a frame of another
size, a misaligned frame or a frame cap that is already mapped — so the model refuses the
same, before anything is mapped.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from typing import Any

from sel4vmm.errors import AddressSpaceError
from sel4vmm.memory.reservation import VmFrame
from sel4vmm.sel4.cspace import CSpace
from sel4vmm.sel4.objects import ObjectKind, ObjectRun


def frame_rights(rights: str) -> tuple[bool, bool]:
    """(writable, executable) of a rights string; refused unless readable ``r[w][x]``."""
    rights = rights.lower()
    if not rights or set(rights) - set("rwx") or "r" not in rights:
        raise AddressSpaceError(
            f"frame rights '{rights}' are not a readable combination of r, w and x",
            fix="use 'r', 'rw', 'rx' or 'rwx'",
        )
    return "w" in rights, "x" in rights


def frame_cap(cspace: CSpace, cptr: int) -> tuple[ObjectRun, int] | None:
    """The frame run and index behind a cap slot, or None if it holds no frame cap."""
    found = cspace.lookup(cptr)
    if found is None:
        return None
    owner, index = found
    if isinstance(owner, ObjectRun) and owner.kind is ObjectKind.FRAME:
        return owner, index
    return None


def check_frame(
    cspace: CSpace, where: str, span: tuple[int, int], current: int, frame: VmFrame
) -> tuple[ObjectRun, int]:
    """The run and index of ``frame`` if seL4 would map it at ``frame.vaddr``.

    ``span`` is the page-rounded range of the reservation (libsel4vspace's reservation is
    page-rounded, so a sub-page reservation maps its whole covering page, as in C).
    """
    if frame.cptr == 0:
        raise AddressSpaceError(
            f"{where}: the frame iterator returned a null cap",
            fix="make the iterator return a frame for every address of the reservation",
        )
    found = frame_cap(cspace, frame.cptr)
    if found is None:
        raise AddressSpaceError(
            f"{where}: cap {frame.cptr} is not a frame cap of this VM",
            fix="return caps of frames the VM's allocator made",
        )
    run, index = found
    if run.size_bits != frame.size_bits:
        raise AddressSpaceError(
            f"{where}: cap {frame.cptr} is a 2^{run.size_bits} frame, not 2^{frame.size_bits}",
            fix="report the frame's real size_bits",
        )
    size = 1 << frame.size_bits
    lo, hi = span
    if (
        frame.vaddr % size
        or not (lo <= frame.vaddr and frame.vaddr + size <= hi)
        or not (frame.vaddr <= current < frame.vaddr + size)
    ):
        raise AddressSpaceError(
            f"{where}: frame for {frame.vaddr:#x} (2^{frame.size_bits}) is misaligned or "
            f"does not cover {current:#x} inside the reservation",
            fix="return frames aligned to their size that cover the asked address",
        )
    if run.mapped is not None and run.mapped[index]:
        raise AddressSpaceError(
            f"{where}: frame cap {frame.cptr} is already mapped",
            fix="map a copy of the cap (seL4 maps each frame cap once)",
        )
    return run, index


def frame_iterator(
    runs: Iterable[ObjectRun], base: int, rights: str = "rw"
) -> Callable[[int, Any], VmFrame]:
    """A ``memory_map_iterator_fn`` over frame runs laid out consecutively from ``base``."""
    table: list[tuple[int, ObjectRun]] = []
    cursor = base
    for run in runs:
        table.append((cursor, run))
        cursor += run.size
    starts = [s for s, _ in table]

    def iterator(addr: int, _cookie: Any) -> VmFrame:
        index = bisect.bisect_right(starts, addr) - 1
        if index < 0:
            return VmFrame(0, rights, addr, 12)
        start, run = table[index]
        offset = addr - start
        if offset >= run.size:
            return VmFrame(0, rights, addr, 12)
        i = offset >> run.size_bits
        return VmFrame(run.cptr(i), rights, start + (i << run.size_bits), run.size_bits)

    return iterator
