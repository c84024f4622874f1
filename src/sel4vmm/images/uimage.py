"""U-Boot legacy ``uImage``: a 64-byte big-endian header, two CRC32s, then the payload.

Header: ``ih_magic 0x27051956, ih_hcrc, ih_time, ih_size, ih_load, ih_ep, ih_dcrc`` (u32
each), ``ih_os, ih_arch, ih_type, ih_comp`` (u8 each), ``ih_name[32]``.  ``ih_hcrc`` is the
CRC32 of the header with that field zeroed; ``ih_dcrc`` the CRC32 of the ``ih_size``
payload bytes.  Both are checked: a corrupt kernel should fail here, not as a silent hang
in the guest.  The payload goes to ``ih_load`` and runs from ``ih_ep``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.blob import require
from sel4vmm.images.kernel import KernelRequirements

MAGIC = 0x27051956
HEADER_SIZE = 64
_HEADER = struct.Struct(">7I4B32s")

#: ``ih_arch`` values from U-Boot's include/image.h.
ARCHES = {2: "arm", 3: "i386", 22: "aarch64", 24: "x86_64", 26: "riscv64"}
#: ``ih_type`` values.
TYPES = {
    1: "standalone",
    2: "kernel",
    3: "ramdisk",
    4: "multi",
    5: "firmware",
    6: "script",
    8: "flat_dt",
    14: "kernel_noload",
}
#: ``ih_comp`` values.
COMPRESSIONS = {0: "none", 1: "gzip", 2: "bzip2", 3: "lzma", 4: "lzo", 5: "lz4", 6: "zstd"}


@dataclass(frozen=True)
class UImageHeader:
    size: int
    load: int
    entry: int
    os: int
    arch: str
    image_type: str
    compression: str
    name: str
    timestamp: int

    def requirements(self) -> KernelRequirements:
        """Placement of the payload; only meaningful for an uncompressed payload (the
        kernel reader refuses compressed ones before asking)."""
        noload = self.image_type == "kernel_noload"
        return KernelRequirements(
            format="uImage",
            arch=self.arch,
            payload_offset=HEADER_SIZE,
            load_size=self.size,
            footprint=self.size,
            fixed_address=None if noload else self.load,
            fixed_entry=None if noload else self.entry,
        )


def is_uimage(data: bytes | memoryview) -> bool:
    return len(data) >= 4 and struct.unpack_from(">I", data, 0)[0] == MAGIC


def parse_uimage(data: bytes | memoryview, path: str = "<memory>") -> UImageHeader:
    where = Location(path)
    require(data, HEADER_SIZE, "uImage header", path)
    (magic, hcrc, timestamp, size, load, entry, dcrc, os_id, arch, image_type, comp, name) = (
        _HEADER.unpack_from(data, 0)
    )
    if magic != MAGIC:
        raise Sel4VmmError(f"not a uImage: magic is {magic:#010x}", location=where)
    header = bytearray(data[:HEADER_SIZE])
    header[4:8] = b"\0\0\0\0"
    if zlib.crc32(header) != hcrc:
        raise Sel4VmmError(
            f"corrupt uImage: header CRC is {zlib.crc32(header):#010x}, the header says "
            f"{hcrc:#010x}",
            location=where,
            fix="re-create the uImage with mkimage",
        )
    require(data, HEADER_SIZE + size, "uImage payload", path)
    actual = zlib.crc32(data[HEADER_SIZE : HEADER_SIZE + size])
    if actual != dcrc:
        raise Sel4VmmError(
            f"corrupt uImage: payload CRC is {actual:#010x}, the header says {dcrc:#010x}",
            location=where,
            fix="re-create the uImage with mkimage, or re-download it",
        )
    return UImageHeader(
        size=size,
        load=load,
        entry=entry,
        os=os_id,
        arch=ARCHES.get(arch, f"arch#{arch}"),
        image_type=TYPES.get(image_type, f"type#{image_type}"),
        compression=COMPRESSIONS.get(comp, f"comp#{comp}"),
        name=name.split(b"\0", 1)[0].decode("ascii", "replace"),
        timestamp=timestamp,
    )
