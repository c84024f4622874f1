"""U-Boot legacy uImage: header fields and both CRCs."""

from __future__ import annotations

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.uimage import HEADER_SIZE, parse_uimage
from tests.images.synthetic import arm64_image, uimage


def test_fields_and_requirements() -> None:
    body = arm64_image(0x4000)
    header = parse_uimage(uimage(body, load=0x40080000, entry=0x40080040, name="linux"))
    assert (header.load, header.entry) == (0x40080000, 0x40080040)
    assert header.arch == "aarch64"
    assert header.image_type == "kernel"
    assert header.compression == "none"
    assert header.name == "linux"
    req = header.requirements()
    assert req.payload_offset == HEADER_SIZE
    assert req.fixed_address == 0x40080000
    assert req.entry_for(0x40080000) == 0x40080040


def test_header_crc_mismatch() -> None:
    data = bytearray(uimage(b"payload"))
    data[40] ^= 0xFF  # ih_arch changed after the CRC was computed
    with pytest.raises(Sel4VmmError, match="header CRC"):
        parse_uimage(bytes(data), "uImage")


def test_payload_crc_mismatch() -> None:
    data = bytearray(uimage(b"payload bytes"))
    data[-1] ^= 0x01
    with pytest.raises(Sel4VmmError, match="payload CRC"):
        parse_uimage(bytes(data), "uImage")


def test_truncated_payload() -> None:
    with pytest.raises(Sel4VmmError, match="truncated uImage payload"):
        parse_uimage(uimage(bytes(1000))[:500], "uImage")
