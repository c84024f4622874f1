"""Physical memory of a board, backed by one sparse host mapping.

Why one mapping: every frame the model hands out is a *view* into the same host memory at
``paddr - base``, so a frame is just an address and a size, two VMs that get different
frames cannot see each other's bytes, and a 4 GiB board costs only the pages a run touches
(the mapping is ``MAP_NORESERVE`` anonymous memory, or a sparse file for the QEMU backend,
which must share guest RAM with another process).
"""

from __future__ import annotations

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
        if backing_path is None:
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE
            self._mmap = mmap.mmap(-1, self.span, flags=flags)
        else:
            try:
                self._fd = os.open(backing_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                os.ftruncate(self._fd, self.span)
            except OSError as error:
                raise Sel4VmmError(
                    f"cannot create the guest-memory file {backing_path}: {error.strerror}",
                    fix="choose a writable path on a tmpfs such as /dev/shm",
                ) from None
            self._mmap = mmap.mmap(self._fd, self.span, flags=mmap.MAP_SHARED)
        self._view = memoryview(self._mmap)
        self._host_base = ctypes.addressof(ctypes.c_char.from_buffer(self._mmap))

    # -- queries -------------------------------------------------------------------------
    @property
    def ram_ranges(self) -> tuple[MemoryRange, ...]:
        return tuple(r for r in self.ranges if not r.device)

    def _offset(self, paddr: int, size: int) -> int:
        offset = paddr - self.base
        if offset < 0 or size < 0 or offset + size > self.span:
            raise Sel4VmmError(
                f"physical range [{paddr:#x}, {paddr + size:#x}) is outside the board "
                f"[{self.base:#x}, {self.base + self.span:#x})"
            )
        return offset

    # -- access --------------------------------------------------------------------------
    def view(self, paddr: int, size: int) -> memoryview:
        """A writable zero-copy view of physical memory (what a frame cap maps)."""
        offset = self._offset(paddr, size)
        return self._view[offset : offset + size]

    def host_address(self, paddr: int) -> int:
        """The host virtual address of ``paddr`` (for unicorn ``mem_map_ptr``, KVM slots)."""
        return self._host_base + self._offset(paddr, 0)

    def file_offset(self, paddr: int) -> int:
        """Offset of ``paddr`` in the backing file (QEMU maps the file, not our memory)."""
        return self._offset(paddr, 0)

    def resident_bytes(self) -> int:
        """Bytes of the backing that are resident in host memory (via ``mincore``)."""
        libc = ctypes.CDLL(None, use_errno=True)
        pages = self.span // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        rc = libc.mincore(ctypes.c_void_p(self._host_base), ctypes.c_size_t(self.span), vec)
        if rc != 0:
            raise OSError(ctypes.get_errno(), "mincore failed")
        return sum(1 for b in vec if b & 1) * mmap.PAGESIZE

    def close(self) -> None:
        """Release the host mapping; views taken earlier must be released first."""
        self._view.release()
        self._mmap.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __repr__(self) -> str:
        ranges = ", ".join(str(r) for r in self.ranges)
        return f"PhysicalMemory({ranges})"
