"""The device-tree layer: the full blob check, the tree model, the writer, hostile trees.

dtc is the reference: every real device tree source beside the repository is compiled by
dtc, read and written back by sel4vmm, and decompiled by dtc again, and the two
decompilations must be equal.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sel4vmm.backends.unicorn.devicetree import GuestDeviceTree, build_device_tree
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.dtb import DeviceTree
from sel4vmm.images.fdt_check import MAX_DEPTH, check_fdt
from sel4vmm.images.fdt_tree import Fdt, FdtNode, read_fdt
from tests.images.limits import bounded, run_sel4vmm
from tests.images.synthetic import arm64_image

REALWORLD = Path(__file__).resolve().parents[2] / ".." / "shared" / "realworld"
ZCU102 = REALWORLD / "libvmm" / "simple" / "board" / "zcu102"
needs_dtc = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc is not installed")
needs_realworld = pytest.mark.skipif(
    not ZCU102.exists(), reason="../shared/realworld is not beside the repository"
)


def dtc(source: str | Path | bytes, *, out: str = "dtb", informat: str = "dts") -> bytes:
    """dtc itself, with a timeout, for reference blobs and decompilations."""
    command = ["dtc", "-q", "-I", informat, "-O", out]
    if isinstance(source, Path):
        return subprocess.run(
            [*command, str(source)], capture_output=True, check=True, timeout=60
        ).stdout
    data = source.encode() if isinstance(source, str) else source
    return subprocess.run(
        [*command, "-"], input=data, capture_output=True, check=True, timeout=60
    ).stdout


def real_sources() -> list[Path]:
    if not REALWORLD.exists():
        return []
    return sorted(p for p in REALWORLD.rglob("linux.dts"))


# -- item 1 of issue 10: a one-byte-corrupt DTB ------------------------------------------


@needs_dtc
@needs_realworld
def test_one_corrupt_byte_is_a_located_error_not_a_heap_corruption(tmp_path: Path) -> None:
    """Issue 10 item 1: dtc of zcu102's linux.dts with byte 0x12 set to 0x87 moves
    off_mem_rsvmap out of the blob; pylibfdt accepted it and aborted in Fdt.resize."""
    blob = bytearray(dtc(ZCU102 / "linux.dts"))
    blob[0x12] = 0x87
    corrupt = tmp_path / "linux.dtb"
    corrupt.write_bytes(blob)
    kernel = tmp_path / "Image"
    kernel.write_bytes(arm64_image(2 << 20, image_size=3 << 20))
    result = run_sel4vmm(
        ["images", str(ZCU102 / "simple.system"), "--kernel", str(kernel), "--dtb", str(corrupt)]
    )
    assert result.returncode == 1, result.stderr
    said = " ".join(result.stderr.split())
    assert f"{corrupt}: error: corrupt device tree: the memory reservation map" in said
    assert "Traceback" not in result.stdout + result.stderr


def _header_with(blob: bytes, index: int, value: int) -> bytes:
    out = bytearray(blob)
    struct.pack_into(">I", out, 4 * index, value)
    return bytes(out)


def test_every_header_field_is_checked_against_the_blob() -> None:
    good = DeviceTree.empty().to_bytes()
    total = len(good)
    cases = {
        "memory reservation map": (4, total),  # off_mem_rsvmap past the end
        "is not 8-byte aligned": (4, 44),
        "structure block": (2, total - 4),
        "strings block": (3, total),
        "overlap": (3, 0x38),  # strings on top of the structure block
        "ends at": (9, 8),  # structure block too short to hold FDT_END
    }
    for expected, (index, value) in cases.items():
        with pytest.raises(Sel4VmmError, match=expected):
            check_fdt(_header_with(good, index, value), "vm.dtb")


def test_reservation_map_must_end_inside_its_block() -> None:
    good = bytearray(DeviceTree.empty().to_bytes())
    good[0x28:0x38] = struct.pack(">QQ", 0x1000, 0x1000)  # terminator overwritten
    with pytest.raises(Sel4VmmError, match="no \\(0, 0\\) terminator"):
        check_fdt(bytes(good), "vm.dtb")


def _tree_blob(root: FdtNode) -> bytes:
    return Fdt(root).to_bytes()


def test_structure_block_tokens_are_checked() -> None:
    blob = bytearray(_tree_blob(FdtNode("", {"a": b"\0\0\0\1"})))
    off_struct = struct.unpack_from(">I", blob, 8)[0]
    prop = off_struct + 8  # after FDT_BEGIN_NODE and the root's empty (padded) name
    length_at, name_at = prop + 4, prop + 8
    for where, value, expected in (
        (length_at, 0x7FFFFFFF, "past the end of the structure block"),
        (name_at, 0x1000, "outside the strings block"),
        (prop, 0x77, "unknown token 0x77"),
        (off_struct, 2, "closes no node"),
    ):
        bad = bytearray(blob)
        struct.pack_into(">I", bad, where, value)
        with pytest.raises(Sel4VmmError, match=expected):
            check_fdt(bytes(bad), "vm.dtb")


def test_duplicates_and_depth_are_bounded() -> None:
    root = FdtNode("", children=[FdtNode("a"), FdtNode("a")])
    with pytest.raises(Sel4VmmError, match="two sibling nodes named 'a'"):
        check_fdt(_tree_blob(root), "vm.dtb")
    deep = FdtNode("")
    node = deep
    for _ in range(MAX_DEPTH):
        child = FdtNode("n")
        node.children.append(child)
        node = child
    with pytest.raises(Sel4VmmError, match=f"nested deeper than {MAX_DEPTH}"):
        check_fdt(_tree_blob(deep), "vm.dtb")


# -- item 6 of issue 10: hostile but well-formed trees through `images --dtb` ------------

HOSTILE = {
    "size-cells-zero": (
        "#address-cells = <2>; #size-cells = <0>;",
        "the root node's #size-cells is 0",
    ),
    "cells-wrong-length": (
        "#address-cells = <0 2>; #size-cells = <2>;",
        "the root node's #address-cells is 8 bytes long",
    ),
    "huge-address-cells": (
        "#address-cells = <0x10000000>; #size-cells = <2>;",
        "the root node's #address-cells is 268435456",
    ),
}


@needs_dtc
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_cells_are_located_errors(name: str, tmp_path: Path) -> None:
    cells, expected = HOSTILE[name]
    blob = dtc(
        f'/dts-v1/; / {{ {cells} memory@40000000 {{ device_type = "memory"; '
        "reg = <0 0x40000000 0 0x10000000>; }; };"
    )
    path = tmp_path / f"{name}.dtb"
    path.write_bytes(blob)
    with bounded(), pytest.raises(Sel4VmmError, match=expected) as error:
        DeviceTree(blob, str(path)).memory_ranges()
    assert error.value.location is not None and error.value.location.path == str(path)
    assert error.value.fix


@needs_dtc
def test_memory_reg_of_the_wrong_length_and_non_utf8_strings() -> None:
    blob = dtc(
        "/dts-v1/; / { #address-cells = <2>; #size-cells = <2>; chosen { bootargs = [ff fe 00]; };"
        ' m { device_type = "memory"; reg = <0 0x40000000 0>; };'
        " n { device_type = [ff 00]; reg = <1>; }; };"
    )
    tree = DeviceTree(blob, "vm.dtb")
    with pytest.raises(Sel4VmmError, match="reg is 12 bytes, not a whole number"):
        tree.memory_ranges()
    with pytest.raises(Sel4VmmError, match="bootargs is not UTF-8"):
        _ = tree.bootargs


@needs_dtc
def test_non_utf8_device_type_is_just_not_memory() -> None:
    """Issue 10 item 6: a non-UTF-8 device_type was a UnicodeDecodeError traceback."""
    blob = dtc(
        "/dts-v1/; / { #address-cells = <2>; #size-cells = <2>;"
        " n@0 { device_type = [ff fe 00]; reg = <0 0 0 0x1000>; }; };"
    )
    tree = DeviceTree(blob, "vm.dtb")
    assert tree.memory_ranges() == []
    tree.set_memory([(0x40000000, 0x1000_0000)])
    assert DeviceTree(tree.to_bytes()).memory_ranges() == [(0x40000000, 0x1000_0000)]


@needs_dtc
@needs_realworld
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_cells_through_images_are_one_error(name: str, tmp_path: Path) -> None:
    cells, expected = HOSTILE[name]
    dtb = tmp_path / "linux.dtb"
    dtb.write_bytes(dtc(f"/dts-v1/; / {{ {cells} chosen {{ }}; }};"))
    kernel = tmp_path / "Image"
    kernel.write_bytes(arm64_image(2 << 20, image_size=3 << 20))
    system = ZCU102.parent / "qemu_virt_aarch64" / "simple.system"
    result = run_sel4vmm(["images", str(system), "--kernel", str(kernel), "--dtb", str(dtb)])
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, said
    assert f"{dtb}: error: {expected}" in said
    assert "Traceback" not in said


def test_blocks_in_any_order_are_read_and_edited() -> None:
    """libfdt's edits fail with BADLAYOUT on a strings block before the structure block;
    the layout is legal, so sel4vmm reads it and writes a normal one."""
    blob = DeviceTree.empty().to_bytes()
    header = list(struct.unpack_from(">10I", blob))
    off_struct, off_strings = header[2], header[3]
    size_strings, size_struct = header[8], header[9]
    structure = blob[off_struct : off_struct + size_struct]
    strings = blob[off_strings : off_strings + size_strings]
    strings += b"\0" * (-len(strings) % 4)
    header[3] = off_struct
    header[2] = off_struct + len(strings)
    header[1] = header[2] + size_struct
    swapped = struct.pack(">10I", *header) + blob[40:off_struct] + strings + structure
    tree = DeviceTree(swapped, "swapped.dtb")
    tree.set_memory([(0x40000000, 0x1000_0000)])
    tree.set_chosen(bootargs="console=ttyAMA0", initrd=(0x48000000, 0x49000000))
    again = DeviceTree(tree.to_bytes())
    assert again.memory_ranges() == [(0x40000000, 0x1000_0000)]
    assert again.initrd == (0x48000000, 0x49000000)


# -- the model against dtc ---------------------------------------------------------------


@needs_dtc
@pytest.mark.parametrize("source", real_sources(), ids=lambda p: str(p.relative_to(REALWORLD)))
def test_real_trees_round_trip_exactly_as_dtc_reads_them(source: Path) -> None:
    original = dtc(source)
    ours = read_fdt(original, str(source)).to_bytes()
    check_fdt(ours)
    decompiled = dtc(ours, out="dts", informat="dtb")
    reference = dtc(original, out="dts", informat="dtb")
    assert decompiled == reference


def test_emulator_tree_is_the_bytes_libfdt_wrote() -> None:
    """The SHA-256 of the tree pylibfdt's FdtSw built for these layouts (its first
    ``totalsize`` bytes), recorded at commit a4f14c3 before the writer was replaced."""
    import hashlib

    layouts = {
        "c8e673c8bb1722d73a28054d1f949b21823064e3f5377b4bd9529fdc775a349b": GuestDeviceTree(
            0x40000000,
            0x10000000,
            0x9000000,
            33,
            0x8000000,
            0x8010000,
            "console=ttyAMA0 earlycon=pl011,0x9000000",
        ),
        "0fe696f33f8101c6823a6502248763d5194844f8b307977ef3557042b7a3d153": GuestDeviceTree(
            0x40000000, 0x20000000, 0x9000000, 33, 0x8000000, 0x8010000, "", 0xA000000, 4
        ),
    }
    for digest, layout in layouts.items():
        assert hashlib.sha256(build_device_tree(layout)).hexdigest() == digest


# -- fuzzing -----------------------------------------------------------------------------


def _seed_blobs() -> list[bytes]:
    seeds = [DeviceTree.empty().to_bytes()]
    if shutil.which("dtc") and ZCU102.exists():
        seeds.append(
            dtc(REALWORLD / "libvmm" / "simple" / "board" / "qemu_virt_aarch64" / "linux.dts")
        )
    return seeds


SEEDS = _seed_blobs()


@st.composite
def mutated_dtb(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data[at] = draw(st.integers(0, 255))
        else:  # a whole 32-bit field: offsets, lengths, tokens, cells
            at &= ~3
            data[at : at + 4] = draw(st.integers(0, 0xFFFFFFFF)).to_bytes(4, "big")
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_dtb())
def test_mutated_dtbs_are_refused_or_edited_safely(data: bytes) -> None:
    with bounded():
        try:
            tree = DeviceTree(data, "fuzz.dtb")
            tree.memory_ranges()
            _ = tree.bootargs, tree.initrd
            tree.set_memory([(0x40000000, 0x1000_0000)])
            tree.set_chosen(bootargs="console=ttyAMA0", initrd=(0x48000000, 0x49000000))
        except Sel4VmmError as error:
            assert error.message
            return
        check_fdt(tree.to_bytes())
