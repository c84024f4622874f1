"""``run_qemu`` end to end: layouts from systems, errors, bare-metal guests, a Linux boot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sel4vmm.backends.qemu.session import bundled_system, layout_of, run_qemu, vm_layout
from sel4vmm.config.spec import GuestRegion, RegionKind, VmSpec
from sel4vmm.errors import Location, Sel4VmmError
from tests.backends.qemu.guests import (
    DTB_CHECK_GUEST,
    MARKER,
    SPIN_FOREVER,
    synthetic_kernel,
)


def _shm_files() -> set[str]:
    shm = Path("/dev/shm")
    prefix = f"sel4vmm-{os.getpid()}-"
    return {p.name for p in shm.glob(prefix + "*")} if shm.is_dir() else set()


def test_layout_of_libvmm_simple_system(libvmm_board: Path) -> None:
    layout = vm_layout(libvmm_board / "simple.system")
    assert (layout.name, layout.ram_base, layout.ram_size, layout.page_bits) == (
        "linux",
        0x4000_0000,
        0x1000_0000,
        21,
    )


@pytest.fixture
def camkes_vm_minimal(realworld: Path) -> Path:
    path = realworld / "camkes-vm-examples" / "vm_minimal" / "vm_minimal.camkes"
    if not path.is_file():
        pytest.skip(f"camkes-vm-examples' vm_minimal is not at {path}")
    return path


def test_layout_of_camkes_vm_minimal_on_qemu_arm_virt(camkes_vm_minimal: Path) -> None:
    layout = vm_layout(camkes_vm_minimal)
    assert (layout.name, layout.ram_base, layout.ram_size, layout.num_vcpus) == (
        "vm0",
        0x4000_0000,
        0x2000_0000,
        2,
    )


def test_bundled_system_is_the_default_layout() -> None:
    assert vm_layout(bundled_system()).ram_base == 0x4000_0000


def test_system_without_a_virtual_machine_is_refused(tmp_path: Path) -> None:
    system = tmp_path / "novm.system"
    system.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<system>\n'
        '    <protection_domain name="pd"><program_image path="pd.elf" /></protection_domain>\n'
        "</system>\n"
    )
    with pytest.raises(Sel4VmmError, match="describes no virtual machine"):
        vm_layout(system)
    with pytest.raises(Sel4VmmError, match="no VM named 'other'"):
        vm_layout(bundled_system(), "other")


def test_separate_ram_windows_are_refused() -> None:
    location = Location("vm.camkes", 12, 5)
    vm = VmSpec(
        "linux",
        ram_base=0x4000_0000,
        ram_size=0x100_0000,
        ram_location=location,
        regions=[GuestRegion("high", RegionKind.RAM, 0x6000_0000, 0x100_0000)],
    )
    with pytest.raises(Sel4VmmError, match="2 separate RAM windows") as caught:
        layout_of(vm, "vm.camkes")
    assert caught.value.location == location


def test_one_ram_window_from_merged_regions() -> None:
    vm = VmSpec(
        "linux",
        regions=[
            GuestRegion("a", RegionKind.RAM, 0x4000_0000, 0x100_0000, page_bits=21),
            GuestRegion("b", RegionKind.RAM, 0x4100_0000, 0x100_0000, page_bits=12),
        ],
    )
    layout = layout_of(vm, "x")
    assert (layout.ram_base, layout.ram_size, layout.page_bits) == (0x4000_0000, 0x200_0000, 12)


def test_no_qemu_binary_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(Sel4VmmError) as caught:
        run_qemu(None, tmp_path / "Image", qemu_binary=tmp_path / "no-qemu")
    assert caught.value.fix is not None and "qemu-system-arm" in caught.value.fix


def _bare_metal(tmp_path: Path, code: bytes) -> Path:
    kernel = tmp_path / "guest.Image"
    kernel.write_bytes(synthetic_kernel(code))
    return kernel


def test_guest_starts_at_the_kernel_with_x0_pointing_at_the_dtb(
    tmp_path: Path, libvmm_board: Path, qemu: str, dtc: str
) -> None:
    before = _shm_files()
    result = run_qemu(
        libvmm_board / "simple.system",
        _bare_metal(tmp_path, DTB_CHECK_GUEST),
        dts=libvmm_board / "linux.dts",
        overlays=[libvmm_board / "overlay.dts"],
        timeout=60,
        marker="D\n",
    )
    assert result.ok, result.stderr
    assert result.console == "D\n"
    assert result.marker_seconds is not None
    assert _shm_files() == before


def test_without_a_device_tree_qemus_own_is_patched_and_used(tmp_path: Path, qemu: str) -> None:
    result = run_qemu(None, _bare_metal(tmp_path, DTB_CHECK_GUEST), bootargs="x", timeout=60)
    assert result.ok, result.stderr
    assert result.console == "D\n"
    assert any("QEMU virt's own (dumpdtb)" in note for note in result.notes)
    assert result.boot.prepared.device_tree is not None
    assert result.boot.prepared.device_tree.bootargs == "x"
    assert result.boot.prepared.device_tree.memory_ranges() == [(0x4000_0000, 0x1000_0000)]


def test_timeout_stops_qemu_and_removes_the_ram_file(
    tmp_path: Path, libvmm_board: Path, qemu: str, dtc: str
) -> None:
    before = _shm_files()
    result = run_qemu(
        None,
        _bare_metal(tmp_path, SPIN_FOREVER),
        dts=libvmm_board / "linux.dts",
        timeout=0.5,
        marker="never",
    )
    assert result.timed_out and result.exit_code is None and not result.ok
    assert result.marker_seconds is None
    assert result.notes and "still running" in result.notes[0]
    assert _shm_files() == before


@pytest.mark.slow
def test_debian_linux_boots_to_the_initramfs_marker(
    libvmm_board: Path, debian_kernel: Path, marker_initrd: Path, qemu: str, dtc: str
) -> None:
    seen: list[str] = []
    result = run_qemu(
        libvmm_board / "simple.system",
        debian_kernel,
        marker_initrd,
        dts=libvmm_board / "linux.dts",
        overlays=[libvmm_board / "overlay.dts"],
        bootargs="console=ttyAMA0 earlycon=pl011,0x9000000 panic=-1",
        console=seen.append,
        timeout=120,
        marker=MARKER,
    )
    assert result.ok, result.console[-2000:] + result.stderr
    assert MARKER in result.console
    assert "".join(seen).replace("\r\n", "\n") == result.console
    assert result.marker_seconds is not None
    # The kernel read sel4vmm's DTB (QEMU's own has no bootargs without -append) ...
    assert "Kernel command line: console=ttyAMA0 earlycon=pl011,0x9000000 panic=-1" in (
        result.console
    )
    # ... with /memory rewritten to the system's 256 MiB of guest RAM.
    assert "K/262144K available" in result.console
    assert "Power down" in result.console


@pytest.mark.slow
def test_the_readme_boot_returns_on_its_until_text(
    tmp_path: Path, libvmm_board: Path, debian_kernel: Path, qemu: str, dtc: str
) -> None:
    # README "Real Linux on QEMU": sel4vmm initramfs's default image ends in a busybox shell
    # and never powers off (issue 12: the command never returned); --until ends the run.
    from sel4vmm.images.cpio import InitramfsBuilder

    busybox = debian_kernel.parents[1] / "bin" / "busybox"
    if not busybox.is_file():
        pytest.skip(f"no arm64 busybox at {busybox} (run ./install.sh)")
    builder = InitramfsBuilder()
    builder.add_busybox(busybox)  # the default /init: says "... up", then exec /bin/sh
    initrd = tmp_path / "init.cpio.gz"
    initrd.write_bytes(builder.build_gzip())
    before = _shm_files()
    result = run_qemu(
        libvmm_board / "simple.system",
        debian_kernel,
        initrd,
        dts=libvmm_board / "linux.dts",
        overlays=[libvmm_board / "overlay.dts"],
        console=None,
        timeout=120,
        until="sel4vmm initramfs: Linux",
        status=None,
    )
    assert result.ok and result.until_seconds is not None, result.console[-2000:]
    assert "Power down" not in result.console
    assert _shm_files() == before


def test_qemu_that_refuses_to_start_is_an_error_with_its_message(
    tmp_path: Path, libvmm_board: Path, dtc: str
) -> None:
    fake = tmp_path / "qemu-system-aarch64"
    fake.write_text("#!/bin/sh\necho 'qemu: no such machine option' >&2\nexit 1\n")
    fake.chmod(0o755)
    before = _shm_files()
    with pytest.raises(Sel4VmmError, match=r"exit status 1.*no such machine option"):
        run_qemu(
            None,
            _bare_metal(tmp_path, SPIN_FOREVER),
            dts=libvmm_board / "linux.dts",
            qemu_binary=fake,
            timeout=30,
        )
    assert _shm_files() == before


@pytest.mark.slow
def test_camkes_vm_minimal_boots_smp_linux_on_qemus_own_device_tree(
    camkes_vm_minimal: Path, debian_kernel: Path, marker_initrd: Path, qemu: str
) -> None:
    result = run_qemu(
        camkes_vm_minimal,
        debian_kernel,
        marker_initrd,
        bootargs="console=ttyAMA0 panic=-1",
        timeout=120,
        marker=MARKER,
    )
    assert result.ok, result.console[-2000:] + result.stderr
    assert result.marker_seconds is not None
    assert "SMP: Total of 2 processors activated" in result.console
    assert "K/524288K available" in result.console
