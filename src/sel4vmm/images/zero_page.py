"""The Linux x86 zero page (``struct boot_params``) a 64-bit loader hands the kernel.

A VMM that enters Linux at its 64-bit entry replaces the BIOS and the real-mode setup code,
so it must write what they would have found out: the memory map (E820), where the command
line and initrd are, and who loaded the kernel.  The layout is
``arch/x86/include/uapi/asm/bootparam.h``; the setup header inside it is copied from the
bzImage (so the kernel sees its own ``init_size``, ``kernel_alignment``...) and then the
loader-owned fields are filled in, as ``Documentation/arch/x86/boot.rst`` prescribes.
For an ELF ``vmlinux`` there is no setup header to copy, so a minimal one is synthesised.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from sel4vmm.errors import Sel4VmmError

ZERO_PAGE_SIZE: Final = 0x1000

# struct boot_params offsets.
_EXT_RAMDISK_IMAGE: Final = 0x0C0
_EXT_RAMDISK_SIZE: Final = 0x0C4
_EXT_CMD_LINE_PTR: Final = 0x0C8
_E820_ENTRIES: Final = 0x1E8
_SETUP_HEADER: Final = 0x1F1
_E820_TABLE: Final = 0x2D0
_E820_MAX_ENTRIES: Final = 128
_E820_ENTRY: Final = struct.Struct("<QQI")

# Setup-header fields, as offsets in the zero page.
_VID_MODE: Final = 0x1FA
_BOOT_FLAG: Final = 0x1FE
_HEADER_MAGIC: Final = 0x202
_VERSION: Final = 0x206
_TYPE_OF_LOADER: Final = 0x210
_LOADFLAGS: Final = 0x211
_RAMDISK_IMAGE: Final = 0x218
_RAMDISK_SIZE: Final = 0x21C
_HEAP_END_PTR: Final = 0x224
_CMD_LINE_PTR: Final = 0x228
_KERNEL_ALIGNMENT: Final = 0x230

_LOADED_HIGH: Final = 0x01
_CAN_USE_HEAP: Final = 0x80
#: "Undefined" boot loader ID: we are not one of the registered loaders.
_LOADER_UNDEFINED: Final = 0xFF
_VGA_NORMAL: Final = 0xFFFF
#: For a synthesised header: protocol 2.15 and the x86_64 default 2 MiB alignment.
_SYNTHETIC_VERSION: Final = 0x020F
_SYNTHETIC_ALIGNMENT: Final = 0x20_0000


class E820Type(IntEnum):
    """E820 range types Linux understands."""

    RAM = 1
    RESERVED = 2
    ACPI = 3
    NVS = 4
    UNUSABLE = 5


@dataclass(frozen=True)
class E820Entry:
    base: int
    size: int
    type: E820Type = E820Type.RAM

    @property
    def end(self) -> int:
        return self.base + self.size


@dataclass(frozen=True)
class BootParameters:
    """What the loader tells the kernel; addresses are guest-physical."""

    e820: tuple[E820Entry, ...]
    cmdline_addr: int
    initrd_addr: int = 0
    initrd_size: int = 0
    #: The bzImage's setup header (0x1f1 onwards), or None for an ELF vmlinux.
    setup_header: bytes | None = None


def build_zero_page(params: BootParameters) -> bytes:
    """The 4 KiB ``boot_params`` for ``params``."""
    if len(params.e820) > _E820_MAX_ENTRIES:
        raise Sel4VmmError(
            f"the guest memory map has {len(params.e820)} ranges; the zero page holds "
            f"{_E820_MAX_ENTRIES}",
            fix="merge adjacent RAM regions of the guest",
        )
    if not params.e820:
        raise Sel4VmmError("a Linux guest needs at least one RAM range in its E820 map")
    page = bytearray(ZERO_PAGE_SIZE)
    if params.setup_header is not None:
        page[_SETUP_HEADER : _SETUP_HEADER + len(params.setup_header)] = params.setup_header
    else:
        struct.pack_into("<H", page, _BOOT_FLAG, 0xAA55)
        page[_HEADER_MAGIC : _HEADER_MAGIC + 4] = b"HdrS"
        struct.pack_into("<H", page, _VERSION, _SYNTHETIC_VERSION)
        struct.pack_into("<I", page, _KERNEL_ALIGNMENT, _SYNTHETIC_ALIGNMENT)
    struct.pack_into("<H", page, _VID_MODE, _VGA_NORMAL)
    page[_TYPE_OF_LOADER] = _LOADER_UNDEFINED
    page[_LOADFLAGS] |= _LOADED_HIGH | _CAN_USE_HEAP
    struct.pack_into("<H", page, _HEAP_END_PTR, 0xFE00)
    _pack_split(page, _CMD_LINE_PTR, _EXT_CMD_LINE_PTR, params.cmdline_addr)
    _pack_split(page, _RAMDISK_IMAGE, _EXT_RAMDISK_IMAGE, params.initrd_addr)
    _pack_split(page, _RAMDISK_SIZE, _EXT_RAMDISK_SIZE, params.initrd_size)
    page[_E820_ENTRIES] = len(params.e820)
    for index, entry in enumerate(params.e820):
        offset = _E820_TABLE + index * _E820_ENTRY.size
        _E820_ENTRY.pack_into(page, offset, entry.base, entry.size, int(entry.type))
    return bytes(page)


def _pack_split(page: bytearray, low_offset: int, high_offset: int, value: int) -> None:
    """A 64-bit value split over a header field (low 32 bits) and its ``ext_`` field."""
    struct.pack_into("<I", page, low_offset, value & 0xFFFF_FFFF)
    struct.pack_into("<I", page, high_offset, value >> 32)


def read_e820(page: bytes | memoryview) -> list[E820Entry]:
    """The E820 map stored in a zero page (what the kernel will read back)."""
    count = page[_E820_ENTRIES]
    entries = []
    for index in range(count):
        base, size, kind = _E820_ENTRY.unpack_from(page, _E820_TABLE + index * _E820_ENTRY.size)
        entries.append(E820Entry(base, size, E820Type(kind)))
    return entries


#: The PC's legacy hole (VGA memory, option ROMs, the BIOS): never usable RAM on a PC.
LEGACY_HOLE: Final = (0xA_0000, 0x10_0000)


def e820_from_ram(ram: Iterable[tuple[int, int]]) -> tuple[E820Entry, ...]:
    """The E820 map of a guest whose RAM is ``ram`` (base, size): sorted and merged.

    RAM that covers the legacy hole ``[0xa0000, 0x100000)`` is split around it and the hole
    reported as reserved, as every PC firmware does.  This is not cosmetic: Linux ignores
    a map with fewer than two entries (``append_e820_table``) and falls back to the
    ancient E801 call, which describes almost none of the guest's RAM.
    """
    merged: list[list[int]] = []
    for base, size in sorted(ram):
        if merged and merged[-1][0] + merged[-1][1] >= base:
            merged[-1][1] = max(merged[-1][1], base + size - merged[-1][0])
        else:
            merged.append([base, size])
    hole_start, hole_end = LEGACY_HOLE
    entries: list[E820Entry] = []
    for base, size in merged:
        end = base + size
        if base < hole_end and hole_start < end:
            if base < hole_start:
                entries.append(E820Entry(base, hole_start - base))
            entries.append(
                E820Entry(
                    max(base, hole_start),
                    min(end, hole_end) - max(base, hole_start),
                    E820Type.RESERVED,
                )
            )
            if hole_end < end:
                entries.append(E820Entry(hole_end, end - hole_end))
        else:
            entries.append(E820Entry(base, size))
    return tuple(entries)
