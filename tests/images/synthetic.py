"""Synthetic images with correct headers, so tests need no downloaded kernels.

Each builder writes the header fields the format documents (booting.rst, boot.rst, the ELF
and U-Boot headers) around a recognisable payload; tests check parsing against the values
passed in, and loading by reading the payload back out of guest RAM.
"""

from __future__ import annotations

import struct
import zlib

from sel4vmm.images.bzimage import HEADER_MAGIC

ARM64_FLAGS_4K_ANYWHERE = (1 << 1) | (1 << 3)


def payload(size: int, seed: int = 1) -> bytes:
    """``size`` bytes that differ at every offset, so misplaced copies are caught."""
    pattern = bytes((i * 131 + seed) & 0xFF for i in range(4093))
    return (pattern * (size // len(pattern) + 1))[:size]


def arm64_image(
    size: int = 0x20000,
    *,
    text_offset: int = 0,
    image_size: int | None = None,
    flags: int = ARM64_FLAGS_4K_ANYWHERE,
) -> bytes:
    body = bytearray(payload(size))
    header = struct.pack(
        "<IIQQQQQQ4sI",
        0x14000010,  # b #0x40: code0 jumps over the header, as a real Image does
        0,
        text_offset,
        image_size if image_size is not None else size + 0x10000,
        flags,
        0,
        0,
        0,
        b"ARM\x64",
        0,
    )
    body[: len(header)] = header
    return bytes(body)


def bzimage(
    *,
    setup_sects: int = 4,
    protected_size: int = 0x40000,
    version: int = 0x020F,
    init_size: int = 0x400000,
    xloadflags: int = 0x3,
    relocatable: bool = True,
    kernel_alignment: int = 0x200000,
    cmdline_size: int = 2047,
    initrd_addr_max: int = 0x7FFFFFFF,
    pref_address: int = 0x1000000,
) -> bytes:
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    struct.pack_into("<I", setup, 0x1F4, (protected_size + 15) // 16)
    struct.pack_into("<H", setup, 0x1FE, 0xAA55)
    setup[0x200:0x202] = b"\xeb\x66"  # jmp: header ends at 0x202 + 0x66 = 0x268
    setup[0x202:0x206] = HEADER_MAGIC
    struct.pack_into("<H", setup, 0x206, version)
    struct.pack_into("<H", setup, 0x20E, 0x300)  # kernel_version: 0x300 + 0x200 into the file
    setup[0x500:0x520] = b"6.1.0-synthetic (test@sel4vmm)\0\0"
    setup[0x211] = 0x01  # LOADED_HIGH
    struct.pack_into("<I", setup, 0x214, 0x100000)
    struct.pack_into("<I", setup, 0x22C, initrd_addr_max)
    struct.pack_into("<I", setup, 0x230, kernel_alignment)
    setup[0x234] = 1 if relocatable else 0
    setup[0x235] = 21
    struct.pack_into("<H", setup, 0x236, xloadflags)
    struct.pack_into("<I", setup, 0x238, cmdline_size)
    struct.pack_into("<I", setup, 0x248, 0x100)
    struct.pack_into("<I", setup, 0x24C, protected_size - 0x200)
    struct.pack_into("<Q", setup, 0x258, pref_address)
    struct.pack_into("<I", setup, 0x260, init_size)
    return bytes(setup) + payload(protected_size, seed=7)


def elf64(
    segments: list[tuple[int, bytes, int]],
    *,
    entry: int,
    machine: int = 183,
    vaddr_offset: int = 0,
) -> bytes:
    """An ELF64 executable; ``segments`` are (paddr, file bytes, memsz)."""
    ehsize, phentsize = 64, 56
    data_start = ehsize + phentsize * len(segments)
    headers = bytearray()
    blobs = bytearray()
    offset = data_start
    for paddr, content, memsz in segments:
        headers += struct.pack(
            "<IIQQQQQQ", 1, 5, offset, paddr + vaddr_offset, paddr, len(content), memsz, 0x1000
        )
        blobs += content
        offset += len(content)
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,
        machine,
        1,
        entry,
        ehsize,
        0,
        0,
        ehsize,
        phentsize,
        len(segments),
        64,
        0,
        0,
    )
    return bytes(header + headers + blobs)


def zimage(size: int = 0x8000, *, start: int = 0, end: int | None = None) -> bytes:
    body = bytearray(payload(size, seed=3))
    struct.pack_into(
        "<IIII",
        body,
        0x24,
        0x016F2818,
        start,
        end if end is not None else start + size,
        0x04030201,
    )
    return bytes(body)


def uimage(
    data: bytes,
    *,
    load: int = 0x40080000,
    entry: int = 0x40080000,
    arch: int = 22,
    image_type: int = 2,
    comp: int = 0,
    name: str = "synthetic",
) -> bytes:
    def header(hcrc: int) -> bytes:
        return struct.pack(
            ">7I4B32s",
            0x27051956,
            hcrc,
            0,
            len(data),
            load,
            entry,
            zlib.crc32(data),
            5,
            arch,
            image_type,
            comp,
            name.encode().ljust(32, b"\0"),
        )

    return header(zlib.crc32(header(0))) + data
