"""arm64 Image header parsing against Documentation/arm64/booting.rst."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.arm64_image import (
    BASE_ALIGNMENT,
    LEGACY_TEXT_OFFSET,
    KernelPageSize,
    parse_arm64_image,
)
from sel4vmm.images.bzimage import parse_bzimage
from tests.images.limits import run_sel4vmm
from tests.images.synthetic import arm64_image

REALWORLD = Path(__file__).resolve().parents[2] / ".." / "shared" / "realworld"


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


# -- how long the file must be: the EFI stub's PE/COFF section table ----------------------

DEBIAN_ARM64 = sorted(
    (Path(__file__).resolve().parents[2] / ".cache" / "debian-arm64" / "root" / "boot").glob(
        "vmlinuz-*-arm64"
    )
)
needs_debian_kernel = pytest.mark.skipif(
    not DEBIAN_ARM64, reason="Debian's arm64 kernel is not unpacked in .cache (run install.sh)"
)


@needs_debian_kernel
def test_debian_kernel_is_exactly_as_long_as_its_pe_headers_say() -> None:
    data = DEBIAN_ARM64[0].read_bytes()
    header = parse_arm64_image(data, str(DEBIAN_ARM64[0]))
    # Section raw data, then the signature's certificate table, end the file exactly.
    assert header.required_file_size == len(data)
    assert header.required_file_size < header.image_size  # image_size adds the BSS


@needs_debian_kernel
@pytest.mark.parametrize("keep", [1 << 20, 0x1F6DA00, -1])
def test_truncated_debian_kernel_is_refused(keep: int) -> None:
    """Issue 12: 1 MB of the 32 MB kernel was "ok"; also cut at the end of .data's raw
    data (the signature lost) and by one byte."""
    data = DEBIAN_ARM64[0].read_bytes()
    with pytest.raises(Sel4VmmError, match="truncated arm64 Image: its PE/COFF headers"):
        parse_arm64_image(data[:keep], "Image")


@needs_debian_kernel
def test_truncated_kernel_through_images_is_an_error(tmp_path: Path) -> None:
    board = REALWORLD / "libvmm" / "simple" / "board" / "qemu_virt_aarch64"
    if not board.exists():
        pytest.skip("../shared/realworld is not beside the repository")
    cut = tmp_path / "Image"
    cut.write_bytes(DEBIAN_ARM64[0].read_bytes()[: 1 << 20])
    result = run_sel4vmm(["images", str(board / "simple.system"), "--kernel", str(cut)])
    assert result.returncode == 1
    assert f"{cut}: error: truncated arm64 Image" in " ".join(result.stderr.split())


def test_efi_stub_without_pe_header_is_corrupt() -> None:
    data = bytearray(arm64_image())
    data[0:2] = b"MZ"
    struct.pack_into("<I", data, 0x3C, 0x40)
    with pytest.raises(Sel4VmmError, match="no PE header at res5 = 0x40"):
        parse_arm64_image(bytes(data), "Image")


DEBIAN_AMD64 = sorted(Path("/boot").glob("vmlinuz-*-amd64"))


@pytest.mark.skipif(not DEBIAN_AMD64, reason="linux-image-amd64 is not installed (install.sh)")
def test_truncated_real_bzimage_is_refused_by_syssize() -> None:
    data = DEBIAN_AMD64[0].read_bytes()
    parse_bzimage(data, str(DEBIAN_AMD64[0]))
    with pytest.raises(Sel4VmmError, match="truncated bzImage: the header says"):
        parse_bzimage(data[: 1 << 20], "bzImage")
