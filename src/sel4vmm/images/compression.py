"""Compressed images: gzip read and written, the other kernel compressors recognised.

Initrds are normally gzip'd cpio archives, and distribution arm64 kernels ship as
``Image.gz`` (Debian's ``vmlinuz``): the arm64 boot protocol has no decompressor, so a VMM
must inflate them first.  gzip is handled with :mod:`zlib` and checked against its CRC32 and
length trailer so a truncated download fails here.  xz, zstd, lz4, bzip2 and lzma are only
*recognised*, so the error can say "this is xz; decompress it" rather than "unknown format".
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.blob import require

GZIP_MAGIC = b"\x1f\x8b"
GZIP_DEFLATE = 8
_FLAG_FHCRC = 0x02
_FLAG_FEXTRA = 0x04
_FLAG_FNAME = 0x08
_FLAG_FCOMMENT = 0x10
_FLAG_RESERVED = 0xE0

#: Magic numbers of compressors Linux can use for kernels and initramfs images.
OTHER_COMPRESSORS: tuple[tuple[bytes, str, str], ...] = (
    (b"\xfd7zXZ\x00", "xz", "unxz"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
    (b"\x02\x21\x4c\x18", "lz4 (legacy)", "lz4 -d"),
    (b"\x04\x22\x4d\x18", "lz4", "lz4 -d"),
    (b"BZh", "bzip2", "bunzip2"),
    (b"\x89LZO", "lzo", "lzop -d"),
    (b"\x5d\x00\x00", "lzma", "unlzma"),
)


@dataclass(frozen=True)
class GzipHeader:
    """The member header of a gzip file (RFC 1952) and its trailer."""

    method: int
    flags: int
    mtime: int
    original_name: str
    data_offset: int
    #: ISIZE from the trailer: uncompressed length modulo 2**32.
    size_mod_4g: int


def is_gzip(data: bytes | memoryview) -> bool:
    return bytes(data[:2]) == GZIP_MAGIC


def other_compressor(data: bytes | memoryview) -> tuple[str, str] | None:
    """``(name, decompress command)`` if ``data`` starts with a non-gzip compressor's magic."""
    head = bytes(data[:6])
    for magic, name, command in OTHER_COMPRESSORS:
        if head.startswith(magic):
            return name, command
    return None


def parse_gzip_header(data: bytes | memoryview, path: str = "<memory>") -> GzipHeader:
    where = Location(path)
    require(data, 18, "gzip header and trailer", path)
    if not is_gzip(data):
        raise Sel4VmmError("not a gzip file (no 1f 8b magic)", location=where)
    method, flags, mtime = struct.unpack_from("<BBI", data, 2)
    if method != GZIP_DEFLATE:
        raise Sel4VmmError(
            f"corrupt gzip file: compression method {method}, only deflate (8) exists",
            location=where,
        )
    if flags & _FLAG_RESERVED:
        raise Sel4VmmError("corrupt gzip file: reserved header flags are set", location=where)
    offset = 10
    if flags & _FLAG_FEXTRA:
        require(data, offset + 2, "gzip extra field", path)
        offset += 2 + struct.unpack_from("<H", data, offset)[0]
    name = ""
    for flag in (_FLAG_FNAME, _FLAG_FCOMMENT):
        if flags & flag:
            end = bytes(data[offset : offset + 4096]).find(b"\0")
            if end < 0:
                raise Sel4VmmError("corrupt gzip file: unterminated header string", location=where)
            if flag == _FLAG_FNAME:
                name = bytes(data[offset : offset + end]).decode("latin-1")
            offset += end + 1
    if flags & _FLAG_FHCRC:
        offset += 2
    require(data, offset + 8, "gzip stream", path)
    (isize,) = struct.unpack_from("<I", data, len(data) - 4)
    return GzipHeader(method, flags, mtime, name, offset, isize)


def gunzip(data: bytes | memoryview, path: str = "<memory>", *, limit: int = 1 << 32) -> bytes:
    """Inflate every gzip member of ``data``; a truncated or corrupt stream is a user error.

    ``limit`` bounds the output so a hostile or mistaken input cannot exhaust memory.
    """
    where = Location(path)
    parse_gzip_header(data, path)
    out = bytearray()
    view = memoryview(data).cast("B")
    while view:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(view, limit - len(out) + 1)
        except zlib.error as error:
            raise Sel4VmmError(
                f"corrupt gzip data: {error}",
                location=where,
                fix="the file is damaged; re-create or re-download it",
            ) from None
        if len(out) > limit:
            raise Sel4VmmError(
                f"gzip data inflates to more than {limit:#x} bytes",
                location=where,
                fix="use a smaller image",
            )
        if not inflater.eof:
            raise Sel4VmmError(
                "truncated gzip file: the compressed stream ends early",
                location=where,
                fix="the file was cut short; re-create or re-download it",
            )
        rest = inflater.unused_data
        # Concatenated members are legal (the kernel's initramfs unpacker accepts them);
        # trailing zero padding (from dd or block alignment) is ignored like gzip -d does.
        if not rest.strip(b"\0"):
            break
        view = memoryview(rest)
        if not is_gzip(view):
            raise Sel4VmmError(
                "corrupt gzip file: garbage after the compressed stream",
                location=where,
                fix="re-create the file",
            )
    return bytes(out)


def gzip_bytes(data: bytes | memoryview, *, level: int = 9) -> bytes:
    """gzip ``data`` reproducibly (mtime 0, no file name) so identical inputs give identical
    initramfs images and test fixtures."""
    deflater = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflater.compress(data) + deflater.flush()
    header = GZIP_MAGIC + bytes([GZIP_DEFLATE, 0, 0, 0, 0, 0, 2 if level == 9 else 0, 3])
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return header + body + trailer
