"""Physical memory of a board, backed by one sparse host mapping.

Why one mapping: every frame the model hands out is a *view* into the same host memory at
``paddr - base``, so a frame is just an address and a size, two VMs that get different
frames cannot see each other's bytes, and a 4 GiB board costs only the pages a run touches
(the mapping is ``MAP_NORESERVE`` anonymous memory, or a sparse file for the QEMU backend,
which must share guest RAM with another process).

The one mapping needs the board's whole span of host *address space* (34 GiB for zcu102),
which an address-space limit (``ulimit -v``) can refuse.  Then each range gets its own
mapping, made when something first touches it — planning touches nothing, a run only the
ranges its VMs use — and a range that cannot be mapped either is one clear error.
"""

from __future__ import annotations

import bisect
import ctypes
import mmap
import os
from collections.abc import Iterable
from dataclasses import dataclass

from sel4vmm.errors import Sel4VmmError

#: Linux's MAP_NORESERVE (the mmap module exports it only from Python 3.12 on).
MAP_NORESERVE: int = getattr(mmap, "MAP_NORESERVE", 0x4000)

#: Boards whose ranges span more than this are refused: the host mapping would not fit.
MAX_SPAN = 1 << 40


@dataclass(frozen=True)
class MemoryRange:
    """A physical address range of a board: RAM, or a device window."""

    base: int
    size: int
    device: bool = False
    name: str = ""

    @property
    def end(self) -> int:
        return self.base + self.size

    def contains(self, addr: int, size: int = 1) -> bool:
        return self.base <= addr and addr + size <= self.end

    def __str__(self) -> str:
        kind = "device" if self.device else "ram"
        label = f" {self.name}" if self.name else ""
        return f"{kind}{label} [{self.base:#x}, {self.end:#x})"


class PhysicalMemory:
    """The board's physical address space and the host memory behind it."""

    def __init__(self, ranges: Iterable[MemoryRange], backing_path: str | None = None) -> None:
        self.ranges: tuple[MemoryRange, ...] = tuple(sorted(ranges, key=lambda r: r.base))
        if not self.ranges:
            raise Sel4VmmError("a board needs at least one physical memory range")
        for r in self.ranges:
            if r.size <= 0:
                raise Sel4VmmError(f"physical range {r} is empty", fix="give it a size > 0")
        for a, b in zip(self.ranges, self.ranges[1:], strict=False):
            if b.base < a.end:
                raise Sel4VmmError(
                    f"physical ranges overlap: {a} and {b}",
                    fix="describe each physical address once",
                )
        self.base = self.ranges[0].base & ~(mmap.PAGESIZE - 1)
        end = max(r.end for r in self.ranges)
        self.span = (end - self.base + mmap.PAGESIZE - 1) & ~(mmap.PAGESIZE - 1)
        if self.span > MAX_SPAN:
            raise Sel4VmmError(
                f"the board's physical ranges span {self.span:#x} bytes, more than a host "
                f"mapping of {MAX_SPAN:#x} allows",
                fix="leave far-away device windows out of the board description",
            )
        self.backing_path = backing_path
        self._fd: int | None = None
        if backing_path is not None:
            try:
                self._fd = os.open(backing_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                os.ftruncate(self._fd, self.span)
            except OSError as error:
                raise Sel4VmmError(
                    f"cannot create the guest-memory file {backing_path}: {error.strerror}",
                    fix="choose a writable path on a tmpfs such as /dev/shm",
                ) from None
        whole = _Segment(self.base, self.base + self.span)
        self._single: _Segment | None = whole
        self._view = memoryview(b"")
        try:
            self._view = whole.map(self._fd, self.base)
            self._segments = [whole]
        except OSError:
            # Not enough address space for the whole span: one lazy mapping per range.
            self._single = None
            self._segments = _range_segments(self.ranges)
        self._starts = [segment.start for segment in self._segments]

    # -- queries -------------------------------------------------------------------------
    @property
    def ram_ranges(self) -> tuple[MemoryRange, ...]:
        return tuple(r for r in self.ranges if not r.device)

    @property
    def mapped_whole(self) -> bool:
        """Whether the board is one host mapping (False: lazy per-range mappings)."""
        return self._single is not None

    def _outside(self, paddr: int, size: int) -> Sel4VmmError:
        return Sel4VmmError(
            f"physical range [{paddr:#x}, {paddr + size:#x}) is outside the board "
            f"[{self.base:#x}, {self.base + self.span:#x})"
        )

    def _segment(self, paddr: int, size: int) -> _Segment:
        """The mapped segment holding ``[paddr, paddr + size)`` (mapping it on first use)."""
        index = bisect.bisect_right(self._starts, paddr) - 1
        if index < 0 or size < 0 or paddr + size > self._segments[index].end:
            raise self._outside(paddr, size)
        segment = self._segments[index]
        if segment.view is None:
            try:
                segment.map(self._fd, self.base)
            except OSError as error:
                raise Sel4VmmError(
                    f"cannot map the board's physical range [{segment.start:#x}, "
                    f"{segment.end:#x}) into sel4vmm's address space: {error.strerror} "
                    f"({segment.end - segment.start:#x} bytes of address space)",
                    fix="raise the address-space limit (ulimit -v) or give the board less "
                    "RAM (--ram-size)",
                ) from None
        return segment

    # -- access --------------------------------------------------------------------------
    def view(self, paddr: int, size: int) -> memoryview:
        """A writable zero-copy view of physical memory (what a frame cap maps)."""
        if self._single is not None:
            offset = paddr - self.base
            if offset < 0 or size < 0 or offset + size > self.span:
                raise self._outside(paddr, size)
            return self._view[offset : offset + size]
        segment = self._segment(paddr, size)
        assert segment.view is not None
        offset = paddr - segment.start
        return segment.view[offset : offset + size]

    def host_address(self, paddr: int) -> int:
        """The host virtual address of ``paddr`` (for unicorn ``mem_map_ptr``, KVM slots)."""
        segment = self._segment(paddr, 0)
        return segment.host_base + (paddr - segment.start)

    def file_offset(self, paddr: int) -> int:
        """Offset of ``paddr`` in the backing file (QEMU maps the file, not our memory)."""
        if not self.base <= paddr <= self.base + self.span:
            raise self._outside(paddr, 0)
        return paddr - self.base

    def resident_bytes(self) -> int:
        """Bytes of the backing that are resident in host memory (via ``mincore``)."""
        return sum(s.resident_bytes() for s in self._segments if s.view is not None)

    def close(self) -> None:
        """Release the host mappings; views taken earlier must be released first."""
        for segment in self._segments:
            segment.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __repr__(self) -> str:
        ranges = ", ".join(str(r) for r in self.ranges)
        return f"PhysicalMemory({ranges})"


class _Segment:
    """One host mapping of physical ``[start, end)``, made by :meth:`map`."""

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.view: memoryview | None = None
        self.host_base = 0
        self._mmap: mmap.mmap | None = None

    def map(self, fd: int | None, file_base: int) -> memoryview:
        size = self.end - self.start
        if fd is None:
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE
            self._mmap = mmap.mmap(-1, size, flags=flags)
        else:
            self._mmap = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, offset=self.start - file_base)
        self.view = memoryview(self._mmap)
        self.host_base = ctypes.addressof(ctypes.c_char.from_buffer(self._mmap))
        return self.view

    def resident_bytes(self) -> int:
        libc = ctypes.CDLL(None, use_errno=True)
        size = self.end - self.start
        pages = size // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        rc = libc.mincore(ctypes.c_void_p(self.host_base), ctypes.c_size_t(size), vec)
        if rc != 0:
            raise OSError(ctypes.get_errno(), "mincore failed")
        return sum(1 for b in vec if b & 1) * mmap.PAGESIZE

    def close(self) -> None:
        if self.view is not None:
            self.view.release()
            self.view = None
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None


def _range_segments(ranges: tuple[MemoryRange, ...]) -> list[_Segment]:
    """Page-rounded segments covering every range, ranges sharing a page merged."""
    page = mmap.PAGESIZE
    segments: list[_Segment] = []
    for r in ranges:
        start = r.base // page * page
        end = -(-r.end // page) * page
        if segments and start <= segments[-1].end:
            segments[-1].end = max(segments[-1].end, end)
        else:
            segments.append(_Segment(start, end))
    return segments
