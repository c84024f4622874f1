"""gzip reading/writing with integrity checks, and recognising other compressors."""

from __future__ import annotations

import gzip

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.compression import (
    gunzip,
    gzip_bytes,
    other_compressor,
    parse_gzip_header,
)
from tests.images.synthetic import payload


def test_round_trip_and_compatibility_with_the_stdlib() -> None:
    data = payload(300_000)
    packed = gzip_bytes(data)
    assert gzip.decompress(packed) == data
    assert gunzip(gzip.compress(data)) == data
    assert gunzip(packed) == data


def test_output_is_reproducible() -> None:
    assert gzip_bytes(b"same input") == gzip_bytes(b"same input")


def test_header_with_original_name() -> None:
    packed = gzip.compress(b"x" * 100)
    named = packed[:3] + bytes([packed[3] | 0x08]) + packed[4:10] + b"rootfs.cpio\0" + packed[10:]
    header = parse_gzip_header(named)
    assert header.original_name == "rootfs.cpio"
    assert header.size_mod_4g == 100
    assert gunzip(named) == b"x" * 100


def test_concatenated_members_and_zero_padding() -> None:
    joined = gzip_bytes(b"first ") + gzip_bytes(b"second") + bytes(512)
    assert gunzip(joined) == b"first second"


def test_truncated_stream() -> None:
    packed = gzip_bytes(payload(100_000))
    with pytest.raises(Sel4VmmError, match="truncated gzip"):
        gunzip(packed[: len(packed) // 2], "rootfs.cpio.gz")


def test_corrupt_crc() -> None:
    packed = bytearray(gzip_bytes(payload(1000)))
    packed[-8] ^= 0xFF
    with pytest.raises(Sel4VmmError, match="corrupt gzip"):
        gunzip(bytes(packed))


def test_garbage_after_the_stream() -> None:
    with pytest.raises(Sel4VmmError, match="garbage"):
        gunzip(gzip_bytes(b"data") + b"trailing junk")


def test_inflation_limit() -> None:
    with pytest.raises(Sel4VmmError, match="inflates to more than"):
        gunzip(gzip_bytes(bytes(1 << 20)), limit=1000)


@pytest.mark.parametrize(
    ("head", "name"),
    [(b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh9", "bzip2")],
)
def test_other_compressors_are_named(head: bytes, name: str) -> None:
    found = other_compressor(head + bytes(16))
    assert found is not None and found[0] == name


def test_plain_data_is_not_compressed() -> None:
    assert other_compressor(b"070701") is None
