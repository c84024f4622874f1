"""Recognising files and opening them for their role (kernel, initrd, DTB)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.compression import gzip_bytes
from sel4vmm.images.cpio import InitramfsBuilder
from sel4vmm.images.detect import (
    ImageKind,
    detect,
    kernel_from_bytes,
    read_dtb,
    read_initrd,
    read_kernel,
)
from sel4vmm.images.dtb import DeviceTree
from tests.helpers import REPO
from tests.images.synthetic import arm64_image, bzimage, elf64, payload, uimage, zimage


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (arm64_image(), ImageKind.ARM64_IMAGE),
        (bzimage(), ImageKind.BZIMAGE),
        (elf64([(0x1000, b"x", 1)], entry=0x1000), ImageKind.ELF),
        (zimage(), ImageKind.ZIMAGE),
        (uimage(b"abc"), ImageKind.UIMAGE),
        (gzip_bytes(b"abc"), ImageKind.GZIP),
        (b"\xfd7zXZ\x00" + bytes(10), ImageKind.OTHER_COMPRESSED),
        (InitramfsBuilder().build(), ImageKind.CPIO),
        (DeviceTree.empty().to_bytes(), ImageKind.DTB),
        (payload(100), ImageKind.UNKNOWN),
        (b"", ImageKind.UNKNOWN),
    ],
)
def test_detect(data: bytes, kind: ImageKind) -> None:
    assert detect(data) is kind


def test_gzip_compressed_arm64_kernel_is_inflated() -> None:
    image = arm64_image(0x40000, text_offset=0x80000)
    kernel = kernel_from_bytes(gzip_bytes(image), path="vmlinuz", arch="aarch64")
    assert kernel.requirements.format == "arm64 Image"
    assert bytes(kernel.blob.data) == image
    assert kernel.description.startswith("gzip-compressed arm64 Image")
    assert kernel.notes[0].severity == "note"


def test_wrong_architecture() -> None:
    with pytest.raises(Sel4VmmError, match=r"\(bzImage\) is built for x86_64 but the VM is"):
        kernel_from_bytes(bzimage(), arch="aarch64")


def test_dtb_given_as_kernel() -> None:
    with pytest.raises(Sel4VmmError) as info:
        kernel_from_bytes(DeviceTree.empty().to_bytes(), path="vm.dtb")
    assert "device tree" in info.value.message and info.value.fix == (
        "this is a device tree; pass it with --dtb"
    )


def test_xz_kernel_names_the_decompressor() -> None:
    with pytest.raises(Sel4VmmError) as info:
        kernel_from_bytes(b"\xfd7zXZ\x00" + bytes(100), path="Image.xz")
    assert info.value.fix == "decompress it first (unxz)"


def test_unknown_kernel_is_a_raw_binary_needing_an_address() -> None:
    kernel = kernel_from_bytes(payload(0x1000), arch="aarch64")
    assert kernel.requirements.needs_configured_address
    assert kernel.notes[0].severity == "warning"


def test_compressed_uimage_is_refused() -> None:
    with pytest.raises(Sel4VmmError, match="gzip-compressed"):
        kernel_from_bytes(uimage(gzip_bytes(b"k"), comp=1))


def test_ramdisk_uimage_is_not_a_kernel() -> None:
    with pytest.raises(Sel4VmmError, match="holds a ramdisk"):
        kernel_from_bytes(uimage(b"rd", image_type=3))


def test_initrd_checks(tmp_path: Path) -> None:
    builder = InitramfsBuilder()
    builder.add_file("/init", b"#!/bin/sh\n", 0o755)
    good = tmp_path / "rootfs.cpio.gz"
    good.write_bytes(builder.build_gzip())
    initrd = read_initrd(good)
    assert initrd.compression == "gzip"
    assert initrd.description == "gzip'd newc cpio, 3 entries"
    assert initrd.notes == []

    no_init = tmp_path / "noinit.cpio"
    no_init.write_bytes(InitramfsBuilder().build())
    plain = read_initrd(no_init)
    assert plain.compression == "none"
    assert plain.description == "newc cpio, 2 entries"  # dev, dev/console

    truncated = tmp_path / "cut.cpio.gz"
    truncated.write_bytes(builder.build_gzip()[:-20])
    with pytest.raises(Sel4VmmError, match="gzip"):
        read_initrd(truncated)


def test_initrd_without_init_warns(tmp_path: Path) -> None:
    path = tmp_path / "rootfs.cpio.gz"
    path.write_bytes(InitramfsBuilder().build_gzip())
    notes = read_initrd(path).notes
    assert any("no /init" in n.message for n in notes)


def test_kernel_given_as_initrd(tmp_path: Path) -> None:
    path = tmp_path / "Image"
    path.write_bytes(arm64_image())
    with pytest.raises(Sel4VmmError, match="is an arm64 Image file, not an initrd"):
        read_initrd(path)


def test_dts_given_as_dtb(tmp_path: Path) -> None:
    path = tmp_path / "linux.dts"
    path.write_text("/dts-v1/;\n/ { };\n")
    with pytest.raises(Sel4VmmError) as info:
        read_dtb(path)
    assert info.value.fix == "pass it with --dts so it is compiled"


def _real_x86_kernel() -> str | None:
    found = sorted(glob.glob("/boot/vmlinuz-*"))
    return found[-1] if found else None


@pytest.mark.skipif(_real_x86_kernel() is None, reason="no /boot/vmlinuz-* (linux-image-amd64)")
def test_real_debian_bzimage() -> None:
    path = _real_x86_kernel()
    assert path is not None
    kernel = read_kernel(path, arch="x86_64")
    header = kernel.header
    assert kernel.requirements.format == "bzImage"
    assert kernel.description.startswith("bzImage, boot protocol 2.")
    assert kernel.requirements.footprint > kernel.requirements.load_size
    assert kernel.requirements.payload_offset + kernel.requirements.load_size == os.path.getsize(
        path
    )
    assert header is not None


def _real_arm64_kernel() -> str | None:
    """SEL4VMM_TEST_ARM64_KERNEL, else Debian's kernel that install.sh unpacks."""
    if os.environ.get("SEL4VMM_TEST_ARM64_KERNEL"):
        return os.environ["SEL4VMM_TEST_ARM64_KERNEL"]
    found = sorted(REPO.glob(".cache/debian-arm64/root/boot/vmlinuz-*"))
    return str(found[-1]) if found else None


@pytest.mark.skipif(
    _real_arm64_kernel() is None,
    reason="no arm64 kernel: run ./install.sh (it unpacks Debian's linux-image-arm64 into "
    ".cache/debian-arm64) or set SEL4VMM_TEST_ARM64_KERNEL",
)
def test_real_arm64_kernel() -> None:
    path = _real_arm64_kernel()
    assert path is not None
    kernel = read_kernel(path, arch="aarch64")
    assert kernel.requirements.format == "arm64 Image"
    assert kernel.requirements.footprint >= kernel.requirements.load_size
