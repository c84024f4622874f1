"""Entry registers and the x86 zero page."""

from __future__ import annotations

import struct

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.bootstate import (
    ARM64_PSTATE_EL1H_DAIF_MASKED,
    ZERO_PAGE_SIZE,
    arm32_boot_state,
    arm64_boot_state,
    build_x86_boot_data,
    x86_boot_data_size,
)
from sel4vmm.images.bzimage import parse_bzimage
from sel4vmm.images.placement import RamWindow
from sel4vmm.images.zero_page import read_e820
from tests.images.synthetic import bzimage


def test_arm64_entry_state() -> None:
    state = arm64_boot_state(0x40080000, 0x4F000000)
    assert state.registers() == {
        "pc": 0x40080000,
        "x0": 0x4F000000,
        "x1": 0,
        "x2": 0,
        "x3": 0,
        "pstate": ARM64_PSTATE_EL1H_DAIF_MASKED,
    }
    # EL1h (0b0101) with D, A, I and F masked.
    assert state.pstate & 0xF == 0b0101 and (state.pstate >> 6) & 0xF == 0xF


def test_arm32_entry_state() -> None:
    state = arm32_boot_state(0x40008000, 0x48000000)
    assert (state.r0, state.r1, state.r2) == (0, 0xFFFFFFFF, 0x48000000)


def test_zero_page_fields() -> None:
    header = parse_bzimage(bzimage(cmdline_size=64))
    ram = [RamWindow(0x100000000, 0x10000000), RamWindow(0, 0x80000000)]
    data, state = build_x86_boot_data(
        header,
        addr=0x7000,
        entry=0x100200,
        ram=ram,
        cmdline="console=ttyS0",
        initrd=(0x123456000, 0x2000),
    )
    assert len(data) == x86_boot_data_size("console=ttyS0")
    page = data[:ZERO_PAGE_SIZE]
    assert data[ZERO_PAGE_SIZE:] == b"console=ttyS0\0"
    assert page[0x202:0x206] == b"HdrS"  # the setup header was copied
    assert page[0x210] == 0xFF  # type_of_loader
    assert struct.unpack_from("<I", page, 0x228)[0] == 0x8000  # cmd_line_ptr
    assert struct.unpack_from("<I", page, 0x218)[0] == 0x23456000  # ramdisk_image, low
    assert struct.unpack_from("<I", page, 0x0C0)[0] == 0x1  # ext_ramdisk_image, high
    assert struct.unpack_from("<I", page, 0x21C)[0] == 0x2000
    assert [(e.base, e.size, int(e.type)) for e in read_e820(page)] == [
        (0, 0xA0000, 1),
        (0xA0000, 0x60000, 2),
        (0x100000, 0x80000000 - 0x100000, 1),
        (0x100000000, 0x10000000, 1),
    ]
    assert state.registers() == {"rip": 0x100200, "rsi": 0x7000}


def test_command_line_longer_than_the_kernel_accepts() -> None:
    header = parse_bzimage(bzimage(cmdline_size=8))
    with pytest.raises(Sel4VmmError, match="cmdline_size"):
        build_x86_boot_data(
            header,
            addr=0x7000,
            entry=0,
            ram=[RamWindow(0, 1 << 30)],
            cmdline="x" * 9,
            initrd=None,
        )
