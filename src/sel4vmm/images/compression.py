"""Compressed images: gzip read and written, the other kernel compressors recognised.

Initrds are normally gzip'd cpio archives, and distribution arm64 kernels ship as
``Image.gz`` (Debian's ``vmlinuz``): the arm64 boot protocol has no decompressor, so a VMM
must inflate them first.  gzip is handled with :mod:`zlib`, streamed into one buffer bounded by the
guest's RAM, and checked against its CRC32 and length trailer so a truncated download fails
here.  xz, zstd, lz4, bzip2 and lzma are only
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


#: Input fed to zlib per call when a member starts: an empty member (20 bytes) then costs a
#: small copy of what follows, so many members stay linear; the chunk doubles while a
#: member goes on, up to :data:`_MAX_INPUT_CHUNK`.
_FIRST_INPUT_CHUNK = 256
_MAX_INPUT_CHUNK = 1 << 20
#: Output produced per call, so the size limit is checked as the data grows.
_OUTPUT_CHUNK = 1 << 20
#: Without a guest to size it by, inflated data is bounded by this.
DEFAULT_INFLATE_LIMIT = 4 << 30


def gunzip(
    data: bytes | memoryview,
    path: str = "<memory>",
    *,
    limit: int = DEFAULT_INFLATE_LIMIT,
    limit_reason: str = "",
) -> bytearray:
    """Inflate every gzip member of ``data``; a truncated or corrupt stream is a user error.

    The output is streamed into one buffer and stops as soon as it passes ``limit`` (what
    fits the guest's RAM; ``limit_reason`` says so in the error), so a 3 MB bomb costs at
    most ``limit`` bytes and the time to make them, never a copy of the whole.  Each member
    is fed in growing chunks, so a stream of many tiny members is linear, not quadratic.
    """
    where = Location(path)
    parse_gzip_header(data, path)
    out = bytearray()
    view = memoryview(data).cast("B")
    offset = 0
    while True:
        offset = _inflate_member(view, offset, out, where, limit, limit_reason)
        # Concatenated members are legal (the kernel's initramfs unpacker accepts them);
        # trailing zero padding (from dd or block alignment) is ignored like gzip -d does.
        if offset == len(view):
            break
        if view[offset : offset + 2] == GZIP_MAGIC:
            continue
        if not bytes(view[offset:]).strip(b"\0"):
            break
        raise Sel4VmmError(
            "corrupt gzip file: garbage after the compressed stream",
            location=where,
            fix="re-create the file",
        )
    return out


def _inflate_member(
    view: memoryview,
    offset: int,
    out: bytearray,
    where: Location,
    limit: int,
    limit_reason: str,
) -> int:
    """Inflate the member at ``offset`` onto ``out``; return the offset after it."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    chunk = _FIRST_INPUT_CHUNK
    pending: bytes | memoryview = b""
    while not inflater.eof:
        if not pending and offset < len(view):
            pending = view[offset : offset + chunk]
            offset += len(pending)
            chunk = min(chunk * 2, _MAX_INPUT_CHUNK)
        try:
            produced = inflater.decompress(pending, _OUTPUT_CHUNK)
        except zlib.error as error:
            raise Sel4VmmError(
                f"corrupt gzip data: {error}",
                location=where,
                fix="the file is damaged; re-create or re-download it",
            ) from None
        pending = inflater.unconsumed_tail
        out += produced
        if len(out) > limit:
            reason = f", {limit_reason}" if limit_reason else ""
            raise Sel4VmmError(
                f"the gzip data inflates to more than {limit} bytes{reason}",
                location=where,
                fix="use a smaller image, or give the guest more RAM",
            )
        if not produced and not pending and offset >= len(view) and not inflater.eof:
            raise Sel4VmmError(
                "truncated gzip file: the compressed stream ends early",
                location=where,
                fix="the file was cut short; re-create or re-download it",
            )
    # What zlib read past the member's end belongs to the next member.
    return offset - len(pending) - len(inflater.unused_data)


def gzip_bytes(data: bytes | memoryview, *, level: int = 9) -> bytes:
    """gzip ``data`` reproducibly (mtime 0, no file name) so identical inputs give identical
    initramfs images and test fixtures."""
    deflater = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflater.compress(data) + deflater.flush()
    header = GZIP_MAGIC + bytes([GZIP_DEFLATE, 0, 0, 0, 0, 0, 2 if level == 9 else 0, 3])
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return header + body + trailer
