"""Loading a prepared boot into a VM's guest RAM through the guest-RAM API."""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.config.spec import VmSpec
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.cpio import InitramfsBuilder
from sel4vmm.images.detect import kernel_from_bytes
from sel4vmm.images.loader import load_boot, write_ram_image
from sel4vmm.images.placement import RamWindow
from sel4vmm.images.prepare import BootInputs, prepare_boot, prepare_from_spec
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform
from tests.images.synthetic import arm64_image, elf64, payload

MIB = 1 << 20
RAM_BASE = 0x40000000


def make_vm(ram_size: int = 64 * MIB) -> VirtualMachine:
    vm = VirtualMachine.create("vm0", make_platform(ram_size=256 * MIB), pools=[PoolRequest(24, 8)])
    vm.ram.register_at(RAM_BASE, ram_size)
    return vm


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "Image").write_bytes(arm64_image(3 * MIB + 123, image_size=4 * MIB))
    builder = InitramfsBuilder()
    builder.add_file("/init", payload(2 * MIB, seed=5), 0o755)
    (tmp_path / "rootfs.cpio.gz").write_bytes(builder.build_gzip())
    return tmp_path


def test_images_land_where_planned(files: Path) -> None:
    vm = make_vm()
    spec = VmSpec(name="vm0", ram_base=RAM_BASE, ram_size=64 * MIB)
    boot = prepare_from_spec(spec, kernel=files / "Image", initrd=files / "rootfs.cpio.gz")
    seen: list[tuple[str, int, int]] = []
    report = load_boot(vm.ram, boot, progress=lambda *args: seen.append(args))
    plan = boot.plan
    assert plan.kernel is not None and plan.initrd is not None and plan.boot_data is not None
    kernel = (files / "Image").read_bytes()
    assert vm.ram.read(plan.kernel.addr, len(kernel)) == kernel
    initrd = (files / "rootfs.cpio.gz").read_bytes()
    assert vm.ram.read(plan.initrd.addr, len(initrd)) == initrd
    assert boot.boot_data is not None
    assert vm.ram.read(plan.boot_data.addr, len(boot.boot_data)) == boot.boot_data
    assert report.entry == RAM_BASE
    assert report.total_bytes == len(kernel) + len(initrd) + len(boot.boot_data)
    # Progress ends at the total, and the kernel's whole image_size is allocated.
    assert seen[-1][1] == seen[-1][2] == report.total_bytes
    allocated = [(r.start, r.size) for r in vm.ram.regions() if r.allocated]
    assert (RAM_BASE, 4 * MIB) in allocated


def test_elf_bss_is_zeroed_even_over_old_contents() -> None:
    vm = make_vm()
    vm.ram.write(RAM_BASE + 0x1000, b"\xff" * 0x3000)
    data = elf64([(RAM_BASE, payload(0x1800), 0x4000)], entry=RAM_BASE)
    boot = prepare_boot(
        BootInputs(
            arch="aarch64",
            ram=[RamWindow(RAM_BASE, 64 * MIB)],
            kernel=kernel_from_bytes(data, arch="aarch64"),
            generate_dtb=True,
        )
    )
    load_boot(vm.ram, boot)
    assert vm.ram.read(RAM_BASE, 0x1800) == payload(0x1800)
    assert vm.ram.read(RAM_BASE + 0x1800, 0x2800) == bytes(0x2800)


def test_plan_with_errors_is_refused_and_nothing_is_allocated(files: Path) -> None:
    vm = make_vm()
    spec = VmSpec(name="vm0", ram_base=RAM_BASE + 0x100000, ram_size=32 * MIB)
    boot = prepare_from_spec(spec, kernel=files / "Image")
    with pytest.raises(Sel4VmmError, match="not 2 MiB aligned"):
        load_boot(vm.ram, boot)
    assert not any(r.allocated for r in vm.ram.regions())


def test_ram_the_vm_lacks_rolls_back(files: Path) -> None:
    # The plan was made for 64 MiB, the VM registered only 16 MiB.
    vm = make_vm(ram_size=16 * MIB)
    spec = VmSpec(name="vm0", ram_base=RAM_BASE, ram_size=64 * MIB)
    boot = prepare_from_spec(spec, kernel=files / "Image", initrd=files / "rootfs.cpio.gz")
    with pytest.raises(Sel4VmmError, match="not all registered guest RAM"):
        load_boot(vm.ram, boot)
    assert not any(r.allocated for r in vm.ram.regions())


def test_ram_image_file(files: Path, tmp_path: Path) -> None:
    spec = VmSpec(name="vm0", ram_base=RAM_BASE, ram_size=64 * MIB)
    boot = prepare_from_spec(spec, kernel=files / "Image", initrd=files / "rootfs.cpio.gz")
    out = tmp_path / "ram.bin"
    size = write_ram_image(boot, out, base=RAM_BASE)
    image = out.read_bytes()
    assert len(image) == size
    plan = boot.plan
    assert plan.initrd is not None and plan.boot_data is not None and boot.boot_data
    initrd = (files / "rootfs.cpio.gz").read_bytes()
    start = plan.initrd.addr - RAM_BASE
    assert image[start : start + len(initrd)] == initrd
    dtb_at = plan.boot_data.addr - RAM_BASE
    assert image[dtb_at : dtb_at + len(boot.boot_data)] == boot.boot_data
    assert image[: 3 * MIB + 123] == (files / "Image").read_bytes()
