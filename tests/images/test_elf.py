"""ELF kernels: PT_LOAD segments, BSS and the physical entry point."""

from __future__ import annotations

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.elf import parse_elf
from tests.images.synthetic import elf64, payload


def test_segments_entry_and_requirements() -> None:
    data = elf64(
        [(0x40000000, payload(0x3000), 0x5000), (0x40010000, payload(0x100, 9), 0x100)],
        entry=0xFFFF000040000040,
        vaddr_offset=0xFFFF000000000000,
    )
    image = parse_elf(data, "kernel.elf")
    assert image.arch == "aarch64"
    assert [s.paddr for s in image.segments] == [0x40000000, 0x40010000]
    assert image.entry_paddr == 0x40000040
    req = image.requirements()
    assert req.fixed_address == 0x40000000
    assert req.footprint == 0x10100
    assert req.fixed_entry == 0x40000040
    first, second = req.load_segments()
    assert (first.offset, first.file_size, first.mem_size) == (0, 0x3000, 0x5000)
    assert second.offset == 0x10000


def test_truncated_segment_is_reported() -> None:
    data = elf64([(0x40000000, payload(0x3000), 0x3000)], entry=0x40000000)
    with pytest.raises(Sel4VmmError, match="truncated ELF"):
        parse_elf(data[:-16], "kernel.elf")


def test_no_loadable_segments() -> None:
    with pytest.raises(Sel4VmmError, match="no PT_LOAD"):
        parse_elf(elf64([], entry=0))


def test_overlapping_segments_are_corrupt() -> None:
    data = elf64(
        [(0x40000000, payload(0x100), 0x2000), (0x40001000, payload(0x100), 0x100)], entry=0
    )
    with pytest.raises(Sel4VmmError, match="overlap"):
        parse_elf(data)


def test_garbage_after_magic_is_a_user_error() -> None:
    with pytest.raises(Sel4VmmError, match="ELF"):
        parse_elf(b"\x7fELF" + bytes(20), "broken.elf")


def test_x86_64_machine() -> None:
    image = parse_elf(elf64([(0x100000, payload(0x100), 0x100)], entry=0x100000, machine=62))
    assert image.arch == "x86_64"
