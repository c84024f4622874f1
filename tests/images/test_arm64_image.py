"""arm64 Image header parsing against Documentation/arm64/booting.rst."""

from __future__ import annotations

import struct

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.arm64_image import (
    BASE_ALIGNMENT,
    LEGACY_TEXT_OFFSET,
    KernelPageSize,
    parse_arm64_image,
)
from tests.images.synthetic import arm64_image


def test_header_fields_are_read_as_written() -> None:
    data = arm64_image(0x30000, text_offset=0x80000, image_size=0x123000, flags=0b1010)
    header = parse_arm64_image(data, "Image")
    assert header.text_offset == 0x80000
    assert header.image_size == 0x123000
    assert header.page_size is KernelPageSize.SIZE_4K
    assert header.anywhere
    assert not header.big_endian
    assert header.file_size == 0x30000


def test_requirements_use_image_size_not_file_size() -> None:
    header = parse_arm64_image(arm64_image(0x20000, text_offset=0x80000, image_size=0x900000))
    req = header.requirements()
    assert req.footprint == 0x900000
    assert req.load_size == 0x20000
    assert req.base_alignment == BASE_ALIGNMENT
    assert req.allows(0x40080000)
    assert not req.allows(0x40000000)
    assert req.load_address_for_base_at_or_above(0x40100000) == 0x40280000
    assert req.load_address_for_base_at_or_above(0x40000000) == 0x40080000


def test_legacy_kernel_uses_the_documented_text_offset() -> None:
    header = parse_arm64_image(arm64_image(0x10000, text_offset=0x1234000, image_size=0))
    assert header.legacy
    assert header.effective_text_offset == LEGACY_TEXT_OFFSET


def test_page_size_flags() -> None:
    header = parse_arm64_image(arm64_image(flags=3 << 1))
    assert header.page_size is KernelPageSize.SIZE_64K
    assert not header.anywhere


def test_bad_magic_is_reported_with_the_fix() -> None:
    data = bytearray(arm64_image())
    data[0x38:0x3C] = b"XXXX"
    with pytest.raises(Sel4VmmError) as info:
        parse_arm64_image(bytes(data), "vmlinux")
    assert "ARM\\x64" in info.value.message
    assert info.value.location is not None and info.value.location.path == "vmlinux"
    assert info.value.fix is not None and "Image" in info.value.fix


def test_truncated_header() -> None:
    with pytest.raises(Sel4VmmError, match="truncated arm64 Image header"):
        parse_arm64_image(arm64_image()[:0x30], "Image")


def test_big_endian_kernel_is_refused() -> None:
    data = bytearray(arm64_image())
    struct.pack_into("<Q", data, 0x18, 1)
    with pytest.raises(Sel4VmmError, match="big-endian"):
        parse_arm64_image(bytes(data))


def test_lowest_load_address_versus_lowest_base() -> None:
    req = parse_arm64_image(arm64_image(text_offset=0x80000)).requirements()
    # The lowest *load address* above 0x40100000 has its base at 0x40000000 ...
    assert req.first_load_address_at_or_above(0x40100000) == 0x40080000 + 0x200000
    assert req.first_load_address_at_or_above(0x40000000) == 0x40080000
    # ... while a base must itself be at or above a RAM start.
    assert req.load_address_for_base_at_or_above(0x40000001) == 0x40280000
