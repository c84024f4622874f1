"""ELF kernels: ``PT_LOAD`` segments at their physical addresses, entry from the header.

Some guests (a vmlinux, seL4 itself, bare-metal test programs) are ELF files.  A VMM loads
each ``PT_LOAD`` segment at its ``p_paddr`` (guest-physical: the guest's MMU is off at
entry), zero-fills ``p_memsz - p_filesz`` of BSS, and jumps to ``e_entry`` translated from
virtual to physical through the segment that contains it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.blob import require
from sel4vmm.images.kernel import KernelRequirements, LoadSegment

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

ELF_MAGIC = b"\x7fELF"

#: ``e_machine`` names pyelftools reports, mapped to the architecture names users write.
_MACHINES = {"EM_AARCH64": "aarch64", "EM_X86_64": "x86_64", "EM_ARM": "arm", "EM_RISCV": "riscv64"}


@dataclass(frozen=True)
class ElfSegment:
    """One ``PT_LOAD`` program header."""

    file_offset: int
    file_size: int
    vaddr: int
    paddr: int
    mem_size: int
    flags: int


@dataclass(frozen=True)
class ElfImage:
    """The loadable view of an ELF file."""

    arch: str
    entry_vaddr: int
    segments: tuple[ElfSegment, ...]
    file_size: int

    @property
    def load_base(self) -> int:
        return min(s.paddr for s in self.segments)

    @property
    def load_end(self) -> int:
        return max(s.paddr + s.mem_size for s in self.segments)

    @property
    def entry_paddr(self) -> int:
        """The entry point as a physical address (the guest starts with its MMU off)."""
        for seg in self.segments:
            if seg.vaddr <= self.entry_vaddr < seg.vaddr + seg.mem_size:
                return self.entry_vaddr - seg.vaddr + seg.paddr
        return self.entry_vaddr

    def requirements(self) -> KernelRequirements:
        base = self.load_base
        return KernelRequirements(
            format="ELF",
            arch=self.arch,
            payload_offset=0,
            load_size=sum(s.file_size for s in self.segments),
            footprint=self.load_end - base,
            fixed_address=base,
            fixed_entry=self.entry_paddr,
            segments=tuple(
                LoadSegment(s.file_offset, s.file_size, s.paddr - base, s.mem_size)
                for s in self.segments
            ),
        )


class _ViewStream(io.RawIOBase):
    """A seekable read-only stream over a memoryview, so pyelftools reads headers in place
    instead of copying a (possibly huge, debug-info-laden) vmlinux into a BytesIO."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view.cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        chunk = self._view[self._pos : self._pos + len(target)]
        target[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def is_elf(data: bytes | memoryview) -> bool:
    return bytes(data[:4]) == ELF_MAGIC


def interpreter(data: bytes | memoryview) -> str | None:
    """The dynamic loader an executable asks for (``PT_INTERP``), None if static.

    A dynamically linked program cannot run as an initramfs's /init unless its libraries
    are in the archive too, which is why busybox must come from busybox-static.
    """
    try:
        elf = ELFFile(io.BufferedReader(_ViewStream(memoryview(data))))
        for segment in elf.iter_segments():
            if isinstance(segment, InterpSegment):
                return str(segment.get_interp_name())
    except (ELFError, ValueError, KeyError):
        return None
    return None


def parse_elf(data: bytes | memoryview, path: str = "<memory>") -> ElfImage:
    """Read the program headers; a truncated or segment-less ELF is a user error."""
    where = Location(path)
    require(data, 16, "ELF identification", path)
    if not is_elf(data):
        raise Sel4VmmError("not an ELF file (no \\x7fELF magic)", location=where)
    try:
        elf = ELFFile(io.BufferedReader(_ViewStream(memoryview(data))))
        machine = str(elf["e_machine"])
        entry = int(elf["e_entry"])
        segments = tuple(
            ElfSegment(
                file_offset=int(seg["p_offset"]),
                file_size=int(seg["p_filesz"]),
                vaddr=int(seg["p_vaddr"]),
                paddr=int(seg["p_paddr"]),
                mem_size=int(seg["p_memsz"]),
                flags=int(seg["p_flags"]),
            )
            for seg in elf.iter_segments()
            if seg["p_type"] == "PT_LOAD" and seg["p_memsz"] > 0
        )
    except (ELFError, ValueError, KeyError) as error:
        raise Sel4VmmError(
            f"corrupt ELF file: {error}",
            location=where,
            fix="the file was cut short or is not an ELF; rebuild it",
        ) from None
    if not segments:
        raise Sel4VmmError(
            "the ELF file has no PT_LOAD segments: nothing to load",
            location=where,
            fix="link the kernel as an executable (an object file or a stripped debug "
            "file has no loadable segments)",
        )
    for seg in segments:
        if seg.file_offset + seg.file_size > len(data):
            raise Sel4VmmError(
                f"truncated ELF: a PT_LOAD segment needs file bytes up to "
                f"{seg.file_offset + seg.file_size:#x} but the file has {len(data):#x}",
                location=where,
                fix="the file was cut short; rebuild or re-download it",
            )
        if seg.file_size > seg.mem_size:
            raise Sel4VmmError(
                f"corrupt ELF: a PT_LOAD segment at {seg.paddr:#x} has p_filesz "
                f"{seg.file_size:#x} > p_memsz {seg.mem_size:#x}",
                location=where,
                fix="rebuild the image",
            )
    ordered = sorted(segments, key=lambda s: s.paddr)
    for a, b in pairwise(ordered):
        if b.paddr < a.paddr + a.mem_size:
            raise Sel4VmmError(
                f"corrupt ELF: PT_LOAD segments at {a.paddr:#x} and {b.paddr:#x} overlap",
                location=where,
                fix="fix the linker script so physical load addresses do not overlap",
            )
    return ElfImage(
        arch=_MACHINES.get(machine, machine),
        entry_vaddr=entry,
        segments=tuple(ordered),
        file_size=len(data),
    )
