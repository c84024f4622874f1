"""Linux arm64 ``Image``: the 64-byte header of Documentation/arm64/booting.rst.

Layout (little-endian)::

    0x00 u32 code0        0x04 u32 code1
    0x08 u64 text_offset  0x10 u64 image_size   0x18 u64 flags
    0x20 u64 res2         0x28 u64 res3         0x30 u64 res4
    0x38 u32 magic "ARM\\x64"                   0x3c u32 res5 (PE header offset)

The image must sit ``text_offset`` bytes above a 2 MiB-aligned base and the ``image_size``
bytes from its start (code, data *and* BSS) must be free.  ``image_size == 0`` marks a
kernel older than 3.17, whose ``text_offset`` is not trustworthy and is 0x80000.

How long the *file* must be is not in this header (``image_size`` counts BSS, which is not
in the file).  A kernel with an EFI stub (every distribution kernel: ``code0`` starts with
"MZ" and ``res5`` points at a PE header) says it in its PE/COFF section table: every
section's raw data (``PointerToRawData + SizeOfRawData``) and the certificate table of a
signed kernel must be inside the file.  Debian's 6.1 arm64 kernel ends its ``.data`` raw
data at 0x1f6da00 and its signature exactly at the end of the file; 1 MB of it is refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum

from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.blob import require
from sel4vmm.images.kernel import KernelRequirements

MAGIC = b"ARM\x64"
MAGIC_OFFSET = 0x38
HEADER_SIZE = 0x40
#: The base the kernel is placed above must be aligned to this (booting.rst §4).
BASE_ALIGNMENT = 2 << 20
#: text_offset of kernels older than 3.17 (``image_size == 0``).
LEGACY_TEXT_OFFSET = 0x80000

_HEADER = struct.Struct("<IIQQQQQQII")
PE_SIGNATURE = b"PE\0\0"
#: The PE/COFF file header after the signature, and one section header (Microsoft PE format).
_COFF = struct.Struct("<HHIIIHH")
_SECTION = struct.Struct("<8sIIIIIIHHI")
#: PE32+ optional header: the offset of NumberOfRvaAndSizes, and of the data directories.
_PE32_PLUS = 0x20B
_NUMBER_OF_RVA_OFFSET = 108
_DATA_DIRECTORIES_OFFSET = 112
_CERTIFICATE_DIRECTORY = 4
#: The PE format allows at most 96 sections.
_MAX_SECTIONS = 96

FLAG_BIG_ENDIAN = 1 << 0
FLAG_PAGE_SIZE_SHIFT = 1
FLAG_PAGE_SIZE_MASK = 0b11 << FLAG_PAGE_SIZE_SHIFT
FLAG_PHYS_PLACEMENT_ANYWHERE = 1 << 3


class KernelPageSize(Enum):
    """The page size the kernel was built for (flags bits 1-2)."""

    UNSPECIFIED = 0
    SIZE_4K = 1
    SIZE_16K = 2
    SIZE_64K = 3


@dataclass(frozen=True)
class Arm64ImageHeader:
    """The fields of an arm64 Image header a loader acts on."""

    text_offset: int
    image_size: int
    flags: int
    pe_offset: int
    file_size: int
    #: The bytes the file must have by its PE/COFF headers (0 without an EFI stub).
    required_file_size: int = 0

    @property
    def legacy(self) -> bool:
        """A pre-3.17 kernel: no image_size, text_offset assumed 0x80000."""
        return self.image_size == 0

    @property
    def effective_text_offset(self) -> int:
        return LEGACY_TEXT_OFFSET if self.legacy else self.text_offset

    @property
    def big_endian(self) -> bool:
        return bool(self.flags & FLAG_BIG_ENDIAN)

    @property
    def page_size(self) -> KernelPageSize:
        return KernelPageSize((self.flags & FLAG_PAGE_SIZE_MASK) >> FLAG_PAGE_SIZE_SHIFT)

    @property
    def anywhere(self) -> bool:
        """Flags bit 3: the 2 MiB-aligned base may be anywhere in physical memory."""
        return bool(self.flags & FLAG_PHYS_PLACEMENT_ANYWHERE)

    @property
    def is_efi_stub(self) -> bool:
        return self.pe_offset != 0

    def requirements(self) -> KernelRequirements:
        # Pre-3.17 kernels do not say how much they need; the file is the best lower bound.
        footprint = self.file_size if self.legacy else max(self.image_size, self.file_size)
        return KernelRequirements(
            format="arm64 Image",
            arch="aarch64",
            payload_offset=0,
            load_size=self.file_size,
            footprint=footprint,
            base_alignment=BASE_ALIGNMENT,
            offset_from_base=self.effective_text_offset,
            entry_offset=0,
            anywhere_in_ram=self.anywhere,
        )


def is_arm64_image(data: bytes | memoryview) -> bool:
    return bytes(data[MAGIC_OFFSET : MAGIC_OFFSET + 4]) == MAGIC


def parse_arm64_image(data: bytes | memoryview, path: str = "<memory>") -> Arm64ImageHeader:
    """Read and check the header; a bad magic or impossible field is a user error."""
    require(data, HEADER_SIZE, "arm64 Image header", path)
    (_code0, _code1, text_offset, image_size, flags, _r2, _r3, _r4, magic, pe_offset) = (
        _HEADER.unpack_from(data, 0)
    )
    if magic != int.from_bytes(MAGIC, "little"):
        raise Sel4VmmError(
            f"not a Linux arm64 Image: expected magic 'ARM\\x64' at offset {MAGIC_OFFSET:#x}, "
            f"found {bytes(data[MAGIC_OFFSET : MAGIC_OFFSET + 4])!r}",
            location=Location(path),
            fix="use arch/arm64/boot/Image (a vmlinux ELF or a compressed Image.gz is not "
            "an Image; decompress Image.gz with gunzip)",
        )
    efi = bytes(data[:2]) == b"MZ" and pe_offset != 0
    header = Arm64ImageHeader(
        text_offset=text_offset,
        image_size=image_size,
        flags=flags,
        pe_offset=pe_offset,
        file_size=len(data),
        required_file_size=_pe_file_end(data, pe_offset, path) if efi else 0,
    )
    if header.big_endian:
        raise Sel4VmmError(
            "the arm64 Image is a big-endian kernel; seL4 guests run little-endian",
            location=Location(path),
            fix="rebuild the kernel without CONFIG_CPU_BIG_ENDIAN",
        )
    if header.required_file_size > len(data):
        raise Sel4VmmError(
            f"truncated arm64 Image: its PE/COFF headers place data up to "
            f"{header.required_file_size:#x} bytes but the file has {len(data):#x}",
            location=Location(path),
            fix="the file was cut short (an interrupted download or copy?); fetch or rebuild it",
        )
    return header


def _pe_file_end(data: bytes | memoryview, pe_offset: int, path: str) -> int:
    """Where the last section's raw data, or the certificate table, ends in the file."""
    where = Location(path)
    coff = pe_offset + len(PE_SIGNATURE)
    require(data, coff + _COFF.size, "arm64 Image PE header", path)
    if bytes(data[pe_offset:coff]) != PE_SIGNATURE:
        raise Sel4VmmError(
            f"corrupt arm64 Image: code0 is 'MZ' (an EFI stub) but there is no PE header at "
            f"res5 = {pe_offset:#x}",
            location=where,
            fix="rebuild the kernel; the file is damaged",
        )
    _machine, sections, _time, _symbols, _count, optional_size, _flags = _COFF.unpack_from(
        data, pe_offset + 4
    )
    if sections > _MAX_SECTIONS:
        raise Sel4VmmError(
            f"corrupt arm64 Image: the PE header lists {sections} sections (at most "
            f"{_MAX_SECTIONS} exist)",
            location=where,
            fix="rebuild the kernel; the file is damaged",
        )
    optional = coff + _COFF.size
    table = optional + optional_size
    require(data, table + sections * _SECTION.size, "arm64 Image PE section table", path)
    end = table + sections * _SECTION.size
    for index in range(sections):
        fields = _SECTION.unpack_from(data, table + index * _SECTION.size)
        raw_size, raw_pointer = fields[3], fields[4]
        if raw_size:
            end = max(end, raw_pointer + raw_size)
    # A signed kernel's certificate table: its "RVA" is a file offset (PE format, 4.7).
    if optional_size >= _DATA_DIRECTORIES_OFFSET + 8 * (_CERTIFICATE_DIRECTORY + 1):
        (magic,) = struct.unpack_from("<H", data, optional)
        (directories,) = struct.unpack_from("<I", data, optional + _NUMBER_OF_RVA_OFFSET)
        if magic == _PE32_PLUS and directories > _CERTIFICATE_DIRECTORY:
            at = optional + _DATA_DIRECTORIES_OFFSET + 8 * _CERTIFICATE_DIRECTORY
            cert_offset, cert_size = struct.unpack_from("<II", data, at)
            if cert_size:
                end = max(end, cert_offset + cert_size)
    return int(end)
