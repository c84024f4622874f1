"""Copy a prepared boot into a VM's guest RAM through the guest-RAM API.

What a VMM does after placement: ``vm_ram_mark_allocated`` every image's footprint (so
later RAM allocations - virtio rings, a generated DTB - cannot land on the kernel's BSS),
then write the bytes.  Images are copied from their file mapping in chunks, so a 40 MB
kernel never exists as Python ``bytes`` and a progress callback can report as it goes.
ELF segments are zero-filled up to ``p_memsz``: after a guest reboot the RAM is not fresh.

Either every image is loaded or, on an error, the RAM allocator is rolled back to where it
was (RAM *contents* are not restored: unallocated RAM has no meaning).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.placement import PAGE, Placed, align_up
from sel4vmm.images.prepare import PreparedBoot
from sel4vmm.memory.guest_ram import GuestRam

#: ``progress(role, bytes_done, bytes_total)`` after every chunk.
ProgressCallback = Callable[[str, int, int], None]

#: Bytes copied per write: big enough to amortise Python overhead, small enough for a
#: smooth progress bar.
CHUNK = 8 << 20
_ZEROS = bytes(CHUNK)


@dataclass(frozen=True)
class LoadReport:
    """What was written where."""

    entry: int
    written: tuple[tuple[str, int, int], ...]

    @property
    def total_bytes(self) -> int:
        return sum(size for _role, _addr, size in self.written)


def _copy(
    ram: GuestRam,
    role: str,
    addr: int,
    source: memoryview,
    progress: ProgressCallback | None,
    done: int,
    total: int,
) -> int:
    for offset in range(0, len(source), CHUNK):
        piece = source[offset : offset + CHUNK]
        ram.write(addr + offset, piece)
        done += len(piece)
        if progress is not None:
            progress(role, done, total)
    return done


def _zero(ram: GuestRam, addr: int, size: int) -> None:
    for offset in range(0, size, CHUNK):
        ram.write(addr + offset, _ZEROS[: min(CHUNK, size - offset)])


def _check_ram(ram: GuestRam, item: Placed) -> None:
    if not ram.is_ram(item.addr, item.size):
        raise Sel4VmmError(
            f"the {item.role} goes to [{item.addr:#x}, {item.end:#x}) but that is not all "
            "registered guest RAM of this VM",
            fix="register the RAM the configuration describes before loading images",
        )


@dataclass(frozen=True)
class _Piece:
    """One copy: ``data`` to ``addr``, then ``zero_fill`` zero bytes after it."""

    role: str
    addr: int
    data: memoryview
    zero_fill: int = 0


def _pieces(boot: PreparedBoot) -> list[_Piece]:
    """What a boot writes, in order; refuses a plan with errors."""
    plan = boot.plan
    plan.raise_if_errors()
    if plan.entry is None or plan.kernel is None or boot.kernel is None:
        raise Sel4VmmError("nothing to load: the boot has no kernel", fix="pass a kernel")
    data = boot.kernel.blob.data
    pieces = [
        _Piece(
            "kernel",
            plan.kernel.addr + segment.offset,
            data[segment.file_offset : segment.file_offset + segment.file_size],
            segment.mem_size - segment.file_size,
        )
        for segment in boot.kernel.requirements.load_segments()
    ]
    if boot.initrd is not None and plan.initrd is not None:
        pieces.append(_Piece("initrd", plan.initrd.addr, boot.initrd.blob.data))
    if boot.boot_data is not None and plan.boot_data is not None:
        pieces.append(_Piece(plan.boot_data.role, plan.boot_data.addr, memoryview(boot.boot_data)))
    return pieces


def _summary(pieces: list[_Piece]) -> tuple[tuple[str, int, int], ...]:
    totals: dict[str, list[int]] = {}
    for piece in pieces:
        entry = totals.setdefault(piece.role, [piece.addr, 0])
        entry[1] += len(piece.data)
    return tuple((role, addr, size) for role, (addr, size) in totals.items())


def load_boot(
    ram: GuestRam, boot: PreparedBoot, *, progress: ProgressCallback | None = None
) -> LoadReport:
    """Mark and write the kernel, initrd and boot data; refuses a plan with errors."""
    pieces = _pieces(boot)
    plan = boot.plan
    assert plan.entry is not None
    for item in plan.placed:
        _check_ram(ram, item)
    total = sum(len(p.data) for p in pieces)
    done = 0
    with ram.undo.transaction():
        for item in plan.placed:
            ram.mark_allocated(item.addr, align_up(item.size, PAGE))
        for piece in pieces:
            done = _copy(ram, piece.role, piece.addr, piece.data, progress, done, total)
            if piece.zero_fill:
                _zero(ram, piece.addr + len(piece.data), piece.zero_fill)
    return LoadReport(entry=plan.entry, written=_summary(pieces))


def write_ram_image(
    boot: PreparedBoot,
    path: str | os.PathLike[str],
    *,
    base: int,
    progress: ProgressCallback | None = None,
) -> int:
    """Write guest RAM from ``base`` up to the end of the last image as a raw (sparse) file,
    loadable by e.g. QEMU's ``-device loader,file=...,addr=base``; returns its size."""
    pieces = _pieces(boot)
    end = max(p.addr + len(p.data) + p.zero_fill for p in pieces)
    low = min(p.addr for p in pieces)
    if low < base:
        raise Sel4VmmError(
            f"an image starts at {low:#x}, below the RAM image base {base:#x}",
            fix="use the lowest RAM address as the base",
        )
    total = sum(len(p.data) for p in pieces)
    done = 0
    with open(path, "wb") as out:
        out.truncate(end - base)
        for piece in pieces:
            for offset in range(0, len(piece.data), CHUNK):
                chunk = piece.data[offset : offset + CHUNK]
                out.seek(piece.addr - base + offset)
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(piece.role, done, total)
    return end - base
