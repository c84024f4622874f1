"""Image parsers fuzzed: corrupt, truncated and random inputs give a Sel4VmmError, never a
traceback (hypothesis mutates valid synthetic images and feeds random bytes)."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images import cpio, dtb
from sel4vmm.images.blob import ImageBlob
from sel4vmm.images.compression import gunzip, gzip_bytes
from sel4vmm.images.detect import detect, initrd_from_blob, kernel_from_bytes
from tests.images import synthetic

VALID: list[bytes] = [
    synthetic.arm64_image(),
    synthetic.bzimage(),
    synthetic.elf64([(0x40080000, b"\x00" * 64, 0x2000)], entry=0x40080000),
    synthetic.zimage(),
    synthetic.uimage(b"\x01" * 256),
    gzip_bytes(b"hello" * 100),
    cpio.write_newc([cpio.CpioEntry("init", 0o100755, b"#!/bin/sh\n")]),
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
]


@settings(max_examples=300, deadline=None)
@given(mutated(), st.integers(0, len(PARSERS) - 1))
def test_mutated_images_give_user_errors_only(data: bytes, which: int) -> None:
    only_user_errors(PARSERS[which], data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096), st.integers(0, len(PARSERS) - 1))
def test_random_bytes_give_user_errors_only(data: bytes, which: int) -> None:
    only_user_errors(PARSERS[which], data)
