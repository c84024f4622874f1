"""Shared guest RAM and what loading leaves in the file QEMU maps."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from sel4vmm.backends.qemu.loading import BootFiles, load_for_qemu
from sel4vmm.backends.qemu.shared_ram import (
    QEMU_RESERVED_SIZE,
    QEMU_VIRT_RAM_BASE,
    SharedGuestRam,
)
from sel4vmm.backends.qemu.stub import boot_stub
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.fdt_tree import read_fdt
from tests.images.synthetic import arm64_image

RAM_SIZE = 64 << 20


def _file_bytes(path: Path, offset: int, size: int) -> bytes:
    """Read the file as QEMU would see it (through its own descriptor, not our mapping)."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ) as view:
        return view[offset : offset + size]


@pytest.fixture
def images(tmp_path: Path, libvmm_board: Path, dtc: str) -> BootFiles:
    kernel = tmp_path / "Image"
    kernel.write_bytes(arm64_image(0x30000, text_offset=0x80000))
    initrd = tmp_path / "initrd.cpio"
    initrd.write_bytes(os.urandom(0x12345))
    return BootFiles(
        kernel=kernel,
        initrd=initrd,
        dts=libvmm_board / "linux.dts",
        overlays=(libvmm_board / "overlay.dts",),
        bootargs="console=ttyAMA0",
    )


def test_ram_file_lives_in_shared_memory_and_is_removed(tmp_path: Path) -> None:
    with SharedGuestRam("guest", RAM_SIZE) as ram:
        path = ram.path
        assert path.exists()
        assert path.name.startswith(f"sel4vmm-{os.getpid()}-guest-")
        assert path.stat().st_size >= RAM_SIZE
        assert ram.file_offset(QEMU_VIRT_RAM_BASE) == 0
        regions = ram.vm.ram.regions()
        assert (regions[0].start, regions[0].size, regions[0].allocated) == (
            QEMU_VIRT_RAM_BASE,
            QEMU_RESERVED_SIZE,
            True,
        )
    assert not path.exists()


def test_guest_ram_is_one_to_one_so_file_offsets_are_guest_addresses() -> None:
    with SharedGuestRam("guest", RAM_SIZE) as ram:
        addr = QEMU_VIRT_RAM_BASE + 0x345_6000
        assert ram.vm.ram.physical_pieces(addr, 0x1000) == [(addr, addr, 0x1000)]
        ram.vm.ram.write(addr, b"sel4vmm")
        assert _file_bytes(ram.path, addr - QEMU_VIRT_RAM_BASE, 7) == b"sel4vmm"


@pytest.mark.parametrize(
    "base,size,message",
    [
        (0x8000_0000, RAM_SIZE, "QEMU virt's RAM starts at 0x40000000"),
        (QEMU_VIRT_RAM_BASE, RAM_SIZE + 0x1000, "whole number of MiB"),
        (QEMU_VIRT_RAM_BASE, 2 << 20, "whole number of MiB"),
    ],
)
def test_ram_qemu_cannot_present_is_refused(base: int, size: int, message: str) -> None:
    with pytest.raises(Sel4VmmError, match=message):
        SharedGuestRam("guest", size, ram_base=base)


def test_images_stub_and_dtb_are_in_the_file_where_the_plan_says(images: BootFiles) -> None:
    with SharedGuestRam("guest", RAM_SIZE) as ram:
        boot = load_for_qemu(ram, images)
        plan = boot.prepared.plan
        assert plan.kernel is not None and plan.initrd is not None
        # arm64 Image: a 2 MiB-aligned base above QEMU's window, plus text_offset.
        assert plan.kernel.addr == QEMU_VIRT_RAM_BASE + QEMU_RESERVED_SIZE + 0x80000
        assert plan.entry == plan.kernel.addr

        def at(addr: int, size: int) -> bytes:
            return _file_bytes(ram.path, addr - QEMU_VIRT_RAM_BASE, size)

        assert at(plan.kernel.addr, 0x30000) == images.kernel.read_bytes()
        assert images.initrd is not None
        assert at(plan.initrd.addr, plan.initrd.size) == images.initrd.read_bytes()
        assert at(boot.stub_addr, 40) == boot_stub(boot.dtb_addr, plan.entry)
        assert boot.stub_addr < ram.first_free <= min(p.addr for p in plan.placed)
        tree = read_fdt(at(boot.dtb_addr, len(boot.dtb)))
        chosen = tree.find("/chosen")
        assert chosen is not None
        assert chosen.properties["bootargs"] == b"console=ttyAMA0\0"
        start = int.from_bytes(chosen.properties["linux,initrd-start"], "big")
        end = int.from_bytes(chosen.properties["linux,initrd-end"], "big")
        assert (start, end) == (plan.initrd.addr, plan.initrd.end)
        memory_node = tree.find("/memory@40000000")
        assert memory_node is not None
        memory = memory_node.properties["reg"]
        assert memory == QEMU_VIRT_RAM_BASE.to_bytes(8, "big") + RAM_SIZE.to_bytes(8, "big")


def test_kernel_that_does_not_fit_is_an_images_error(tmp_path: Path, images: BootFiles) -> None:
    huge = tmp_path / "Huge"
    huge.write_bytes(arm64_image(0x10000, image_size=RAM_SIZE))
    files = BootFiles(huge, dts=images.dts, overlays=images.overlays)
    with SharedGuestRam("guest", RAM_SIZE) as ram:
        before = ram.vm.ram.regions()
        with pytest.raises(Sel4VmmError, match="is not inside guest RAM"):
            load_for_qemu(ram, files)
        assert ram.vm.ram.regions() == before


def test_no_device_tree_is_a_clear_error(images: BootFiles) -> None:
    files = BootFiles(images.kernel)
    with SharedGuestRam("guest", RAM_SIZE) as ram, pytest.raises(Sel4VmmError) as caught:
        load_for_qemu(ram, files)
    assert "needs the guest's device tree" in caught.value.message
    assert caught.value.fix is not None and "--dts" in caught.value.fix


def test_overlays_without_a_source_and_two_trees_are_refused(images: BootFiles) -> None:
    assert images.dts is not None
    with pytest.raises(Sel4VmmError, match="overlays need a device tree source"):
        BootFiles(images.kernel, dtb=Path("x.dtb"), overlays=images.overlays).open_tree()
    with pytest.raises(Sel4VmmError, match="both a DTB and a DTS"):
        BootFiles(images.kernel, dtb=Path("x.dtb"), dts=images.dts).open_tree()
