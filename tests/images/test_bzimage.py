"""bzImage setup-header parsing against Documentation/x86/boot.rst."""

from __future__ import annotations

import struct

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.bzimage import ENTRY_64_OFFSET, parse_bzimage
from tests.images.synthetic import bzimage


def test_fields_and_requirements() -> None:
    data = bzimage(setup_sects=4, protected_size=0x40000, init_size=0x500000)
    header = parse_bzimage(data, "bzImage")
    assert header.boot_protocol == (2, 15)
    assert header.protocol_text == "2.15"
    assert header.setup_size == 5 * 512
    assert header.protected_mode_size == 0x40000
    assert header.relocatable
    assert header.supports_64bit_entry
    assert header.kernel_version.startswith("6.1.0-synthetic")
    assert header.setup_header[:1] == b"\x04"  # copied from 0x1f1: setup_sects
    assert len(header.setup_header) == 0x268 - 0x1F1
    req = header.requirements()
    assert req.payload_offset == 5 * 512
    assert req.load_size == 0x40000
    assert req.footprint == 0x500000 + 0x200000
    assert req.entry_for(0x100000) == 0x100000 + ENTRY_64_OFFSET
    assert req.base_alignment == 1 << 21
    assert req.initrd_limit == 0x80000000


def test_zero_setup_sects_means_four() -> None:
    data = bytearray(bzimage(setup_sects=4))
    data[0x1F1] = 0
    assert parse_bzimage(bytes(data)).setup_sects == 4


def test_non_relocatable_kernel_is_fixed_at_pref_address() -> None:
    req = parse_bzimage(bzimage(relocatable=False, pref_address=0x1000000)).requirements()
    assert req.fixed_address == 0x1000000


def test_old_protocol_is_refused() -> None:
    with pytest.raises(Sel4VmmError, match=r"boot protocol 2\.10 is too old"):
        parse_bzimage(bzimage(version=0x020A))


def test_protocol_three_is_not_mistaken_for_old() -> None:
    # libvmm compares major and minor separately, which would refuse 3.00.
    assert parse_bzimage(bzimage(version=0x0300)).boot_protocol == (3, 0)


def test_32bit_only_kernel_is_refused() -> None:
    with pytest.raises(Sel4VmmError, match="XLF_KERNEL_64"):
        parse_bzimage(bzimage(xloadflags=0))


def test_truncated_file_is_detected_from_syssize() -> None:
    data = bzimage(protected_size=0x40000)
    with pytest.raises(Sel4VmmError, match="truncated bzImage"):
        parse_bzimage(data[: len(data) - 0x1000], "bzImage")


def test_missing_boot_flag_is_corruption() -> None:
    data = bytearray(bzimage())
    struct.pack_into("<H", data, 0x1FE, 0)
    with pytest.raises(Sel4VmmError, match="boot_flag"):
        parse_bzimage(bytes(data))


def test_not_a_bzimage() -> None:
    with pytest.raises(Sel4VmmError, match="HdrS"):
        parse_bzimage(bytes(0x1000))
