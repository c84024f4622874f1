"""Every real VM system plans on its board; boards named by a path are known or refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sel4vmm.config.load import board_from_path, load_system
from sel4vmm.errors import Sel4VmmError
from sel4vmm.plan import plan_system

VM_MINIMAL_PLATFORMS = ["exynos5422", "odroidc2", "qemu-arm-virt", "tk1", "tx1", "tx2", "zcu102"]


@pytest.mark.parametrize("platform", VM_MINIMAL_PLATFORMS)
def test_vm_minimal_plans_on_all_seven_platforms(realworld: Path, platform: str) -> None:
    path = realworld / "camkes-vm-examples/vm_minimal/vm_minimal.camkes"
    plan = plan_system(load_system(path, board=platform), board=platform)
    errors = [str(f) for f in plan.all_findings() if f.severity == "error"]
    assert errors == []
    assert plan.vms and plan.vms[0].resources is not None


def _vm_systems(realworld: Path) -> list[Path]:
    found = []
    for path in sorted(realworld.glob("**/*.system")):
        if "microkit-sdf-tests" in path.parts:
            continue
        if "<virtual_machine" in path.read_text(errors="replace"):
            found.append(path)
    return found


def test_every_real_vm_system_plans_on_its_board(realworld: Path) -> None:
    systems = _vm_systems(realworld)
    assert len(systems) >= 10
    failures = {}
    for path in systems:
        spec = load_system(path, arch=None)
        plan = plan_system(spec)
        errors = [str(f) for f in plan.all_findings() if f.severity == "error"]
        if errors:
            failures[str(path.relative_to(realworld))] = errors[:2]
    assert failures == {}


def test_the_x86_system_is_planned_as_x86(realworld: Path) -> None:
    path = realworld / "libvmm/simple/board/x86_64_generic_vtx/simple.system"
    plan = plan_system(load_system(path, arch=None))
    assert plan.board.name == "x86_64_generic"
    assert [vm.arch for vm in plan.vms] == ["x86_64"]


def _copy_under(tmp_path: Path, realworld: Path, directory: str) -> Path:
    source = realworld / "libvmm/simple/board/qemu_virt_aarch64/simple.system"
    target = tmp_path / "board" / directory / "simple.system"
    target.parent.mkdir(parents=True)
    shutil.copy(source, target)
    return target


@pytest.mark.parametrize(
    ("directory", "board"),
    [
        ("qemu_virt_aarch64_hyp", "qemu_virt_aarch64"),
        ("odroidc4_4_cores", "odroidc4"),
        ("maaxboard_hyp_4_cores", "maaxboard"),
        ("zcu102", "zcu102"),
    ],
)
def test_board_build_directories_name_their_board(
    tmp_path: Path, directory: str, board: str
) -> None:
    path = tmp_path / "board" / directory / "x.system"
    path.parent.mkdir(parents=True)
    assert board_from_path(path) == board


def test_an_unknown_board_directory_is_refused_by_name(tmp_path: Path, realworld: Path) -> None:
    path = _copy_under(tmp_path, realworld, "frobnicator")
    spec = load_system(path, arch=None)
    with pytest.raises(Sel4VmmError) as caught:
        plan_system(spec)
    assert "board 'frobnicator'" in caught.value.message
    assert caught.value.fix is not None and "--board" in caught.value.fix
    # --board overrides the path.
    assert not plan_system(spec, board="qemu_virt_aarch64").has_errors


def test_riscv_files_are_not_planned_on_an_arm_board(realworld: Path) -> None:
    path = realworld / "libvmm/simple/board/qemu_virt_aarch64/simple.system"
    spec = load_system(path, arch="riscv64", board="qemu_virt_aarch64")
    with pytest.raises(Sel4VmmError) as caught:
        plan_system(spec, board="qemu_virt_aarch64")
    assert "board qemu_virt_aarch64 is aarch64" in caught.value.message
    assert caught.value.fix is not None and "qemu_virt_riscv64" in caught.value.fix
    # Without a board a riscv64 file goes to the RISC-V QEMU board, not the ARM one.
    riscv = load_system(path, arch="riscv64", board="qemu_virt_riscv64")
    assert plan_system(riscv).board.name == "qemu_virt_riscv64"
