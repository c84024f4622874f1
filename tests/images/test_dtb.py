"""Device trees: header checks, /memory and /chosen edits, dtc and overlays."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.dtb import DeviceTree, compile_dts, parse_dtb_header

needs_dtc = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc is not installed")
needs_fdtoverlay = pytest.mark.skipif(
    shutil.which("fdtoverlay") is None, reason="fdtoverlay is not installed"
)

BASE = """/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    compatible = "linux,dummy-virt";
    memory@40000000 {
        device_type = "memory";
        reg = <0x0 0x40000000 0x0 0x80000000>;
    };
    uart: pl011@9000000 {
        reg = <0x0 0x9000000 0x0 0x1000>;
        status = "okay";
    };
};
"""


def test_empty_tree_edits_round_trip() -> None:
    tree = DeviceTree.empty()
    tree.set_memory([(0x40000000, 0x10000000), (0x100000000, 0x40000000)])
    tree.set_chosen(
        bootargs="console=ttyAMA0", stdout_path="/pl011@9000000", initrd=(0x4D000000, 0x4E000000)
    )
    again = DeviceTree(tree.to_bytes())
    assert again.memory_ranges() == [(0x40000000, 0x10000000), (0x100000000, 0x40000000)]
    assert again.bootargs == "console=ttyAMA0"
    assert again.chosen("stdout-path") == b"/pl011@9000000\0"
    assert again.initrd == (0x4D000000, 0x4E000000)
    # Two address cells: the kernel reads 8-byte initrd values.
    assert again.chosen("linux,initrd-start") == struct.pack(">Q", 0x4D000000)


def test_initrd_cells_follow_address_cells() -> None:
    tree = DeviceTree.empty(address_cells=1, size_cells=1)
    tree.set_chosen(initrd=(0x4D000000, 0x4E000000))
    assert tree.chosen("linux,initrd-end") == struct.pack(">I", 0x4E000000)
    tree.set_memory([(0x40000000, 0x10000000)])
    assert tree.memory_ranges() == [(0x40000000, 0x10000000)]


def test_value_too_wide_for_the_cells() -> None:
    tree = DeviceTree.empty(address_cells=1, size_cells=1)
    with pytest.raises(Sel4VmmError, match="does not fit in 1 cell"):
        tree.set_memory([(0x100000000, 0x1000)])


def test_remove_initrd() -> None:
    tree = DeviceTree.empty()
    tree.set_chosen(initrd=(1, 2))
    tree.remove_initrd()
    assert tree.initrd is None


def test_header_checks() -> None:
    blob = DeviceTree.empty().to_bytes()
    assert parse_dtb_header(blob).totalsize == len(blob)
    with pytest.raises(Sel4VmmError, match="truncated device tree"):
        parse_dtb_header(blob[:-8], "vm.dtb")
    with pytest.raises(Sel4VmmError, match="not a device tree blob"):
        parse_dtb_header(b"\0" * 64, "vm.dtb")
    old = bytearray(blob)
    struct.pack_into(">I", old, 20, 3)
    with pytest.raises(Sel4VmmError, match="too old"):
        parse_dtb_header(bytes(old))


def test_corrupt_structure_block() -> None:
    blob = bytearray(DeviceTree.empty().to_bytes())
    off_struct = struct.unpack_from(">I", blob, 8)[0]
    blob[off_struct : off_struct + 4] = b"\xde\xad\xbe\xef"
    with pytest.raises(Sel4VmmError, match="corrupt device tree"):
        DeviceTree(bytes(blob), "vm.dtb")


@needs_dtc
def test_set_memory_replaces_existing_memory_nodes(tmp_path: Path) -> None:
    source = tmp_path / "base.dts"
    source.write_text(BASE)
    tree = DeviceTree(compile_dts(source))
    assert tree.memory_ranges() == [(0x40000000, 0x80000000)]
    tree.set_memory([(0x40000000, 0x10000000)])
    assert tree.memory_ranges() == [(0x40000000, 0x10000000)]


@needs_dtc
def test_libvmm_overlay_overrides_the_base(realworld: Path) -> None:
    board = realworld / "libvmm" / "simple" / "board" / "qemu_virt_aarch64"
    tree = DeviceTree(compile_dts(board / "linux.dts", [board / "overlay.dts"]))
    # overlay.dts shrinks RAM to 256 MiB and sets the initrd and console.
    assert tree.memory_ranges() == [(0x40000000, 0x10000000)]
    assert tree.initrd == (0x4D000000, 0x4E000000)
    assert tree.bootargs is not None and "earlycon=pl011,0x9000000" in tree.bootargs


@needs_dtc
def test_every_libvmm_board_overlay_compiles(realworld: Path) -> None:
    boards = sorted((realworld / "libvmm").glob("*/board/*/overlay.dts"))
    assert boards, "the real-world libvmm boards are missing"
    for overlay in boards:
        tree = DeviceTree(compile_dts(overlay.parent / "linux.dts", [overlay]))
        assert tree.memory_ranges(), overlay


@needs_dtc
def test_dtc_errors_point_into_the_overlay(tmp_path: Path) -> None:
    base = tmp_path / "linux.dts"
    base.write_text(BASE)
    overlay = tmp_path / "overlay.dts"
    overlay.write_text("/ {\n    chosen {\n        bootargs = oops;\n    };\n};\n")
    with pytest.raises(Sel4VmmError) as info:
        compile_dts(base, [overlay])
    assert info.value.location is not None
    assert info.value.location.path == str(overlay)
    assert info.value.location.line == 3


def test_overlay_with_dts_v1_is_refused_like_dtscat(tmp_path: Path) -> None:
    base = tmp_path / "linux.dts"
    base.write_text(BASE)
    overlay = tmp_path / "overlay.dts"
    overlay.write_text("// board overlay\n/dts-v1/;\n/ { };\n")
    with pytest.raises(Sel4VmmError) as info:
        compile_dts(base, [overlay])
    assert info.value.location is not None and info.value.location.line == 2


def test_base_without_dts_v1(tmp_path: Path) -> None:
    base = tmp_path / "overlay.dts"
    base.write_text("/ { };\n")
    with pytest.raises(Sel4VmmError, match="not a base device tree source"):
        compile_dts(base)


@needs_dtc
@needs_fdtoverlay
def test_plugin_overlay_is_applied_with_fdtoverlay(tmp_path: Path) -> None:
    base = tmp_path / "linux.dts"
    base.write_text(BASE)
    plugin = tmp_path / "disable-uart.dts"
    plugin.write_text(
        '/dts-v1/;\n/plugin/;\n&uart { status = "disabled"; };\n'
        '&{/} { chosen { bootargs = "quiet"; }; };\n'
    )
    tree = DeviceTree(compile_dts(base, [plugin]))
    assert tree.bootargs == "quiet"


@needs_dtc
@needs_fdtoverlay
def test_plugin_overlay_with_unknown_label(tmp_path: Path) -> None:
    base = tmp_path / "linux.dts"
    base.write_text(BASE)
    plugin = tmp_path / "bad.dts"
    plugin.write_text('/dts-v1/;\n/plugin/;\n&nosuchlabel { status = "disabled"; };\n')
    with pytest.raises(Sel4VmmError, match="fdtoverlay"):
        compile_dts(base, [plugin])
