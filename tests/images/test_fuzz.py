"""Image parsers fuzzed: corrupt, truncated and random inputs give a Sel4VmmError, never a
traceback, a hang or a blow-up (hypothesis mutates valid synthetic images and feeds random
bytes; every example runs under :func:`tests.images.limits.bounded`, a time and allocation
limit, so a parser that loops or inflates without bound fails the test)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images import cpio, dtb
from sel4vmm.images.blob import ImageBlob
from sel4vmm.images.compression import gunzip, gzip_bytes
from sel4vmm.images.detect import detect, initrd_from_blob, kernel_from_bytes
from tests.images import synthetic
from tests.images.limits import bounded


def _small_tree() -> bytes:
    tree = dtb.DeviceTree.empty()
    tree.set_memory([(0x40000000, 0x10000000)])
    tree.set_chosen(bootargs="console=ttyAMA0", initrd=(0x48000000, 0x49000000))
    return tree.to_bytes()


def _edit_tree(data: bytes) -> None:
    tree = dtb.DeviceTree(data, "fuzz.dtb")
    tree.memory_ranges()
    tree.set_memory([(0x40000000, 0x10000000)])
    tree.set_chosen(bootargs="x", initrd=(1, 2))
    tree.to_bytes()


VALID: list[bytes] = [
    synthetic.arm64_image(),
    synthetic.bzimage(),
    synthetic.elf64([(0x40080000, b"\x00" * 64, 0x2000)], entry=0x40080000),
    synthetic.zimage(),
    synthetic.uimage(b"\x01" * 256),
    gzip_bytes(b"hello" * 100),
    cpio.write_newc([cpio.CpioEntry("init", 0o100755, b"#!/bin/sh\n")]),
    gzip_bytes(b"a" * 1000) + gzip_bytes(b"") * 3,
    _small_tree(),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) if draw(st.booleans()) else bytes(data)


def only_user_errors(parse: Callable[[bytes], object], data: bytes) -> None:
    with bounded(seconds=20, max_bytes=128 << 20):
        try:
            parse(data)
        except Sel4VmmError as error:
            assert error.message


PARSERS: list[Callable[[bytes], object]] = [
    detect,
    lambda d: kernel_from_bytes(d, arch="aarch64"),
    lambda d: kernel_from_bytes(d, arch="x86_64"),
    lambda d: initrd_from_blob(ImageBlob(d, "initrd")),
    lambda d: cpio.read_newc(d),
    lambda d: gunzip(d),
    lambda d: dtb.parse_dtb_header(d),
    _edit_tree,
    lambda d: gunzip(d, limit=1 << 20),
]


@settings(max_examples=300, deadline=None)
@given(mutated(), st.integers(0, len(PARSERS) - 1))
def test_mutated_images_give_user_errors_only(data: bytes, which: int) -> None:
    only_user_errors(PARSERS[which], data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096), st.integers(0, len(PARSERS) - 1))
def test_random_bytes_give_user_errors_only(data: bytes, which: int) -> None:
    only_user_errors(PARSERS[which], data)


@st.composite
def cpio_header_mutation(draw: st.DrawFn) -> bytes:
    """A valid archive with one header field replaced by 8 characters that look numeric."""
    archive = bytearray(cpio.write_newc([cpio.CpioEntry("init", 0o100755, b"#!/bin/sh\n" * 4)]))
    field = draw(st.integers(0, len(cpio.FIELD_NAMES) - 1))
    value = draw(st.text(alphabet="0123456789abcdefABCDEF-+ xX", min_size=8, max_size=8))
    archive[6 + 8 * field : 14 + 8 * field] = value.encode()
    return bytes(archive)


@settings(max_examples=200, deadline=None)
@given(cpio_header_mutation())
def test_cpio_header_fields_give_user_errors_only(data: bytes) -> None:
    only_user_errors(lambda d: cpio.read_newc(d), data)


DTS_PIECES = [
    "#address-cells = <2>;",
    "#size-cells = <0>;",
    "#size-cells = <2>;",
    "#address-cells = <0xffffffff>;",
    'memory@40000000 { device_type = "memory"; reg = <0 0x40000000 0 0x10000000>; };',
    "memory@0 { device_type = [ff fe 00]; reg = <1 2 3>; };",
    'chosen { bootargs = "console=ttyAMA0"; linux,initrd-start = <0x48000000>; };',
    "chosen { bootargs = [ff 00]; };",
    "n { m { o { p = <1>; }; }; };",
    'psci { method = "smc"; };',
    "x = /bits/ 8 <1 2 3>;",
    "label: node@1 { ref = <&label>; };",
    "big = <" + " ".join(["0xffffffff"] * 64) + ">;",
]


@pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc is not installed")
@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(DTS_PIECES), max_size=8))
def test_dts_through_dtc_gives_user_errors_only(pieces: list[str]) -> None:
    """Sources compiled by the real dtc (through run_tool, bounded), then read and edited."""
    with tempfile.TemporaryDirectory(prefix="sel4vmm-fuzz-") as tmp:
        source = Path(tmp) / "fuzz.dts"
        source.write_text("/dts-v1/;\n/ {\n" + "\n".join(pieces) + "\n};\n")

        def compile_and_edit(_data: bytes) -> None:
            _edit_tree(dtb.compile_dts(source))

        only_user_errors(compile_and_edit, b"")


def _efi_stub_header() -> bytes | None:
    """The first 8 KiB of Debian's arm64 kernel: MZ, the Image header, PE/COFF headers."""
    boot = Path(__file__).resolve().parents[2] / ".cache" / "debian-arm64" / "root" / "boot"
    kernels = sorted(boot.glob("vmlinuz-*-arm64"))
    if not kernels:
        return None
    with kernels[0].open("rb") as handle:
        return handle.read(0x2000)


EFI_STUB = _efi_stub_header()


@pytest.mark.skipif(EFI_STUB is None, reason="Debian's arm64 kernel is not in .cache")
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0x1FF), st.integers(0, 0xFFFFFFFF)), max_size=6))
def test_mutated_pe_headers_give_user_errors_only(writes: list[tuple[int, int]]) -> None:
    """32-bit fields of the PE/COFF headers (section count, optional header size, raw data
    pointers and sizes, the certificate directory) replaced at random."""
    assert EFI_STUB is not None
    data = bytearray(EFI_STUB)
    for word, value in writes:
        data[4 * word : 4 * word + 4] = value.to_bytes(4, "little")
    only_user_errors(lambda d: kernel_from_bytes(d, arch="aarch64"), bytes(data))
