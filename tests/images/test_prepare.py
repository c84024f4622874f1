"""From a VmSpec and files to a finished DTB / zero page and entry state."""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

import pytest

from sel4vmm.config.spec import GuestRegion, ImageSpec, RegionKind, VmSpec
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.bootstate import Arm64BootState, X86BootState
from sel4vmm.images.cpio import InitramfsBuilder
from sel4vmm.images.dtb import DeviceTree
from sel4vmm.images.placement import RamWindow
from sel4vmm.images.prepare import prepare_from_spec, ram_windows_of
from sel4vmm.images.zero_page import E820Type, read_e820
from tests.images.synthetic import arm64_image, bzimage

MIB = 1 << 20
needs_dtc = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc is not installed")


@pytest.fixture
def images(tmp_path: Path) -> Path:
    (tmp_path / "Image").write_bytes(arm64_image(0x200000, image_size=0x800000))
    builder = InitramfsBuilder()
    builder.add_file("/init", b"#!/bin/sh\n", 0o755)
    (tmp_path / "rootfs.cpio.gz").write_bytes(builder.build_gzip())
    (tmp_path / "bzImage").write_bytes(bzimage())
    return tmp_path


def test_ram_windows_merge_ram_regions() -> None:
    vm = VmSpec(
        name="vm",
        ram_base=0x40000000,
        ram_size=0x10000000,
        regions=[
            GuestRegion("guest_ram", RegionKind.RAM, 0x40000000, 0x10000000),
            GuestRegion("high", RegionKind.RAM, 0x50000000, 0x1000000),
            GuestRegion("uart", RegionKind.PASSTHROUGH, 0x9000000, 0x1000),
        ],
    )
    assert ram_windows_of(vm) == [RamWindow(0x40000000, 0x11000000)]


def test_generated_dtb_carries_the_final_initrd_address(images: Path) -> None:
    vm = VmSpec(name="linux", ram_base=0x40000000, ram_size=256 * MIB)
    boot = prepare_from_spec(
        vm, kernel=images / "Image", initrd=images / "rootfs.cpio.gz", bootargs="console=hvc0"
    )
    assert boot.ok, boot.findings
    assert boot.boot_data is not None and boot.plan.initrd is not None
    tree = DeviceTree(boot.boot_data)
    assert tree.initrd == (boot.plan.initrd.addr, boot.plan.initrd.end)
    assert tree.memory_ranges() == [(0x40000000, 256 * MIB)]
    assert tree.bootargs == "console=hvc0"
    assert isinstance(boot.boot_state, Arm64BootState)
    assert boot.plan.boot_data is not None
    assert boot.boot_state.x0 == boot.plan.boot_data.addr
    assert len(boot.boot_data) == boot.plan.boot_data.size


@needs_dtc
def test_libvmm_board_with_a_mismatched_memory_node(images: Path, realworld: Path) -> None:
    board = realworld / "libvmm" / "simple" / "board" / "qemu_virt_aarch64"
    # 512 MiB of guest RAM, but overlay.dts says 256 MiB: the tree is corrected, with a warning.
    vm = VmSpec(name="linux", ram_base=0x40000000, ram_size=512 * MIB)
    boot = prepare_from_spec(
        vm, kernel=images / "Image", dts=board / "linux.dts", overlays=[board / "overlay.dts"]
    )
    warnings = [f for f in boot.findings if f.severity == "warning"]
    assert any("memory node says [0x40000000, 0x50000000)" in w.message for w in warnings)
    # The overlay's initrd-start/end is stale without an initrd and is removed.
    assert any("names an initrd" in w.message for w in warnings)
    assert boot.boot_data is not None
    tree = DeviceTree(boot.boot_data)
    assert tree.memory_ranges() == [(0x40000000, 512 * MIB)]
    assert tree.initrd is None


def test_configured_addresses_and_their_locations(images: Path) -> None:
    where = Location("vm.camkes", 40, 13)
    vm = VmSpec(
        name="vm0",
        ram_base=0x40000000,
        ram_size=256 * MIB,
        images=ImageSpec(
            kernel="Image",
            initrd="rootfs.cpio.gz",
            kernel_entry_addr=0x40000000,
            dtb_addr=0x40400000,  # inside the kernel's 8 MiB image_size
            initrd_addr=0x4D000000,
            generate_dtb=True,
            locations={"dtb_addr": where},
        ),
    )
    boot = prepare_from_spec(vm, base_dir=images, camkes=True)
    assert not boot.ok
    error = next(f for f in boot.findings if f.severity == "error")
    assert error.location == where and "BSS" in error.message
    assert boot.boot_data is None


def test_x86_zero_page(images: Path) -> None:
    vm = VmSpec(name="x86", arch="x86_64", ram_base=0, ram_size=512 * MIB)
    boot = prepare_from_spec(
        vm, kernel=images / "bzImage", initrd=images / "rootfs.cpio.gz", bootargs="console=ttyS0"
    )
    assert boot.ok, boot.findings
    assert isinstance(boot.boot_state, X86BootState)
    assert boot.plan.boot_data is not None and boot.boot_data is not None
    assert boot.boot_state.rsi == boot.plan.boot_data.addr
    usable = [(e.base, e.size) for e in read_e820(boot.boot_data[:4096]) if e.type is E820Type.RAM]
    assert usable == [(0, 0xA0000), (0x100000, 512 * MIB - 0x100000)]
    assert boot.boot_data.endswith(b"console=ttyS0\0")


def test_x86_kernel_must_be_a_bzimage(images: Path) -> None:
    vm = VmSpec(name="x86", arch="x86_64", ram_base=0, ram_size=512 * MIB)
    (images / "raw.bin").write_bytes(b"\x90" * 4096)
    boot = prepare_from_spec(vm, kernel=images / "raw.bin")
    assert any("needs a bzImage" in f.message for f in boot.findings)


def test_missing_kernel() -> None:
    with pytest.raises(Sel4VmmError, match="no kernel image given"):
        prepare_from_spec(VmSpec(name="vm", ram_base=0x40000000, ram_size=MIB))


def test_overlays_need_a_dts(images: Path) -> None:
    vm = VmSpec(name="vm", ram_base=0x40000000, ram_size=256 * MIB)
    with pytest.raises(Sel4VmmError, match="overlays need"):
        prepare_from_spec(vm, kernel=images / "Image", overlays=[images / "o.dts"])


def test_missing_device_tree_is_generated_with_a_warning(images: Path) -> None:
    vm = VmSpec(name="linux", ram_base=0x40000000, ram_size=256 * MIB)
    boot = prepare_from_spec(vm, kernel=images / "Image")
    assert boot.ok
    assert any("minimal one with only /memory and /chosen" in f.message for f in boot.findings)


@pytest.mark.skipif(not glob.glob("/boot/vmlinuz-*"), reason="no /boot/vmlinuz-* installed")
def test_real_debian_kernel_and_initrd(tmp_path: Path) -> None:
    kernel = sorted(glob.glob("/boot/vmlinuz-*"))[-1]
    initrds = sorted(glob.glob("/boot/initrd.img-*"))
    vm = VmSpec(name="debian", arch="x86_64", ram_base=0, ram_size=1 << 30)
    boot = prepare_from_spec(
        vm, kernel=kernel, initrd=initrds[-1] if initrds else None, bootargs="console=ttyS0"
    )
    assert boot.ok, boot.findings
    assert boot.plan.kernel is not None and boot.plan.kernel.addr == 0x100000
    assert isinstance(boot.boot_state, X86BootState)
    assert boot.boot_state.rip == 0x100200


def test_camkes_refuses_an_uncompressed_initrd(images: Path) -> None:
    (images / "rootfs.cpio").write_bytes(InitramfsBuilder().build())
    vm = VmSpec(name="vm0", ram_base=0x40000000, ram_size=256 * MIB)
    camkes = prepare_from_spec(
        vm, kernel=images / "Image", initrd=images / "rootfs.cpio", camkes=True
    )
    assert not camkes.ok
    assert any("only loads gzip initrds" in f.message for f in camkes.findings)
    libvmm = prepare_from_spec(vm, kernel=images / "Image", initrd=images / "rootfs.cpio")
    assert libvmm.ok


def test_camkes_dtb_base_name_seeds_the_generated_tree(images: Path) -> None:
    base = DeviceTree.empty()
    base.set_chosen(stdout_path="/serial@0")
    (images / "base.dtb").write_bytes(base.to_bytes())
    vm = VmSpec(
        name="vm0",
        ram_base=0x40000000,
        ram_size=256 * MIB,
        images=ImageSpec(kernel="Image", dtb_base="base.dtb", generate_dtb=True),
    )
    boot = prepare_from_spec(vm, base_dir=images, camkes=True)
    assert boot.ok, boot.findings
    assert boot.boot_data is not None
    assert DeviceTree(boot.boot_data).chosen("stdout-path") == b"/serial@0\0"
    # The generated DTB reserves VM_Arm's whole 0x50000-byte buffer.
    assert boot.plan.boot_data is not None and boot.plan.boot_data.size == 0x50000
