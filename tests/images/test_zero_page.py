"""The Linux zero page: E820 map, command line, initrd and the copied setup header."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.bzimage import parse_bzimage
from sel4vmm.images.zero_page import (
    BootParameters,
    E820Entry,
    E820Type,
    build_zero_page,
    e820_from_ram,
    read_e820,
)


def u32(page: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<I", page, offset)[0]
    return value


def test_e820_round_trips_through_the_page() -> None:
    e820 = (
        E820Entry(0, 0x9F000),
        E820Entry(0x10_0000, 0x3FF0_0000),
        E820Entry(0xFEC0_0000, 0x1000, E820Type.RESERVED),
    )
    page = build_zero_page(BootParameters(e820=e820, cmdline_addr=0x20000))
    assert read_e820(page) == list(e820)


def test_addresses_above_4g_use_the_ext_fields() -> None:
    page = build_zero_page(
        BootParameters(
            e820=(E820Entry(0, 1 << 33),),
            cmdline_addr=0x1_0002_0000,
            initrd_addr=0x1_2000_0000,
            initrd_size=0x1234,
        )
    )
    assert (u32(page, 0x228), u32(page, 0x0C8)) == (0x0002_0000, 1)
    assert (u32(page, 0x218), u32(page, 0x0C0)) == (0x2000_0000, 1)
    assert (u32(page, 0x21C), u32(page, 0x0C4)) == (0x1234, 0)


def test_elf_kernels_get_a_synthesised_header() -> None:
    page = build_zero_page(BootParameters(e820=(E820Entry(0, 1 << 28),), cmdline_addr=0x2000))
    assert page[0x202:0x206] == b"HdrS" and struct.unpack_from("<H", page, 0x1FE)[0] == 0xAA55
    assert page[0x210] == 0xFF  # type_of_loader: undefined
    assert page[0x211] & 0x81 == 0x81  # LOADED_HIGH | CAN_USE_HEAP


def test_ram_ranges_are_sorted_and_merged() -> None:
    assert e820_from_ram(
        [(0x300_0000, 0x10_0000), (0x200_0000, 0x100_0000), (0x800_0000, 0x1000)]
    ) == (
        E820Entry(0x200_0000, 0x110_0000),
        E820Entry(0x800_0000, 0x1000),
    )


def test_ram_over_the_pc_legacy_hole_is_split_around_it() -> None:
    assert e820_from_ram([(0, 0x20_0000)]) == (
        E820Entry(0, 0xA_0000),
        E820Entry(0xA_0000, 0x6_0000, E820Type.RESERVED),
        E820Entry(0x10_0000, 0x10_0000),
    )
    assert e820_from_ram([(0xC_0000, 0x4_0000)]) == (
        E820Entry(0xC_0000, 0x4_0000, E820Type.RESERVED),
    )


def test_empty_or_oversized_maps_are_refused() -> None:
    with pytest.raises(Sel4VmmError, match="at least one RAM range"):
        build_zero_page(BootParameters(e820=(), cmdline_addr=0))
    many = tuple(E820Entry(i * 0x2000, 0x1000) for i in range(129))
    with pytest.raises(Sel4VmmError, match="129 ranges"):
        build_zero_page(BootParameters(e820=many, cmdline_addr=0))


def test_a_real_bzimage_header_is_kept_with_loader_fields_filled() -> None:
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    if not kernels:
        pytest.skip("no /boot/vmlinuz-* (apt-get install linux-image-amd64)")
    data = kernels[-1].read_bytes()
    header = parse_bzimage(data, str(kernels[-1]))
    page = build_zero_page(
        BootParameters(
            e820=(E820Entry(0, 1 << 28),), cmdline_addr=0x20000, setup_header=header.setup_header
        )
    )
    assert page[0x230:0x238] == data[0x230:0x238]  # kernel_alignment .. xloadflags
    assert page[0x260:0x264] == data[0x260:0x264]  # init_size
    assert u32(page, 0x228) == 0x20000 and page[0x210] == 0xFF
