"""arm32 ``zImage``: the self-decompressing 32-bit ARM kernel.

The header is nine words of code followed by (little-endian) ``0x016f2818`` at 0x24, the
link-time ``start`` and ``end`` addresses at 0x28/0x2c, and since Linux 3.17 an endianness
marker ``0x04030201`` at 0x30.  ``start == 0`` means position independent; CAmkES's loader
then puts the image at RAM base + 0x8000 (the historical ARM ``TEXT_OFFSET``), otherwise at
``start``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.blob import require
from sel4vmm.images.kernel import KernelRequirements

MAGIC = 0x016F2818
MAGIC_OFFSET = 0x24
HEADER_SIZE = 0x30
ENDIAN_MARKER_LE = 0x04030201
ENDIAN_MARKER_BE = 0x01020304
#: Where a position-independent zImage goes above the base of RAM (CAmkES, U-Boot bootz).
DEFAULT_OFFSET = 0x8000


@dataclass(frozen=True)
class ZImageHeader:
    start: int
    end: int
    file_size: int

    @property
    def position_independent(self) -> bool:
        return self.start == 0

    @property
    def image_size(self) -> int:
        return self.end - self.start

    def requirements(self) -> KernelRequirements:
        return KernelRequirements(
            format="zImage",
            arch="arm",
            payload_offset=0,
            load_size=self.file_size,
            footprint=max(self.image_size, self.file_size),
            fixed_address=None if self.position_independent else self.start,
            base_alignment=0x1000,
            offset_from_base=DEFAULT_OFFSET if self.position_independent else 0,
        )


def is_zimage(data: bytes | memoryview) -> bool:
    return (
        len(data) >= MAGIC_OFFSET + 4 and struct.unpack_from("<I", data, MAGIC_OFFSET)[0] == MAGIC
    )


def parse_zimage(data: bytes | memoryview, path: str = "<memory>") -> ZImageHeader:
    where = Location(path)
    require(data, HEADER_SIZE, "zImage header", path)
    magic, start, end = struct.unpack_from("<III", data, MAGIC_OFFSET)
    if magic != MAGIC:
        if struct.unpack_from(">I", data, MAGIC_OFFSET)[0] == MAGIC:
            raise Sel4VmmError(
                "the zImage is a big-endian kernel; seL4 guests run little-endian",
                location=where,
                fix="rebuild the kernel without CONFIG_CPU_BIG_ENDIAN",
            )
        raise Sel4VmmError(
            f"not an arm32 zImage: no magic {MAGIC:#010x} at offset {MAGIC_OFFSET:#x}",
            location=where,
        )
    if end <= start:
        raise Sel4VmmError(
            f"corrupt zImage header: end {end:#x} is not above start {start:#x}",
            location=where,
            fix="rebuild arch/arm/boot/zImage",
        )
    header = ZImageHeader(start=start, end=end, file_size=len(data))
    if header.image_size > len(data):
        raise Sel4VmmError(
            f"truncated zImage: the header says {header.image_size:#x} bytes "
            f"but the file has {len(data):#x}",
            location=where,
            fix="the file was cut short; rebuild or re-download it",
        )
    return header
