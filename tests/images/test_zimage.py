"""arm32 zImage headers."""

from __future__ import annotations

import struct

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.zimage import DEFAULT_OFFSET, parse_zimage
from tests.images.synthetic import zimage


def test_position_independent_zimage_goes_above_ram_base() -> None:
    header = parse_zimage(zimage(0x8000))
    assert header.position_independent
    req = header.requirements()
    assert req.fixed_address is None
    assert req.load_address_for_base_at_or_above(0x40000000) == 0x40000000 + DEFAULT_OFFSET


def test_linked_zimage_is_fixed() -> None:
    header = parse_zimage(zimage(0x8000, start=0x80008000))
    assert header.requirements().fixed_address == 0x80008000


def test_truncated_zimage() -> None:
    data = zimage(0x8000)
    with pytest.raises(Sel4VmmError, match="truncated zImage"):
        parse_zimage(data[:0x4000], "zImage")


def test_end_before_start_is_corrupt() -> None:
    with pytest.raises(Sel4VmmError, match="corrupt zImage"):
        parse_zimage(zimage(0x8000, start=0x9000, end=0x8000))


def test_big_endian_zimage() -> None:
    data = bytearray(zimage())
    struct.pack_into(">I", data, 0x24, 0x016F2818)
    with pytest.raises(Sel4VmmError, match="big-endian"):
        parse_zimage(bytes(data))
