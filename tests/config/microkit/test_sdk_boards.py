"""The Microkit SDK's boards (build_sdk.py at the commit in ../shared/realworld/SOURCES.txt)
and the kernel configuration ``check --board`` derives for each, as main.rs would."""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.config.microkit import MicrokitTarget, check_file
from sel4vmm.config.microkit.sdk_boards import SDK_BOARDS, sdk_board, target_for_board
from sel4vmm.config.microkit.versions import MicrokitVersion
from sel4vmm.errors import Sel4VmmError
from tests.helpers import REALWORLD


@pytest.mark.parametrize("name", sorted(SDK_BOARDS))
def test_every_board_gives_a_configuration_the_tool_could_build(name: str) -> None:
    target = target_for_board(name)
    board = SDK_BOARDS[name]
    assert target.arch == board.arch and target.board == name
    if target.arch == "aarch64":
        assert target.arm_smc is True  # KernelAllowSMCCalls on every AArch64 board
        assert target.arm_pa_size_bits in (40, 44)
    else:
        assert target.arm_smc is None and target.arm_pa_size_bits is None
    assert target.iommu is (target.arch == "x86_64")  # main.rs: IOMMU only on x86-64
    if target.arch == "riscv64":
        assert target.hypervisor is False  # main.rs: no hypervisor mode on RISC-V
    # smp-* configurations: KernelMaxNumNodes = cores and KernelNumDomains = 1.
    assert target.num_cores == (board.smp_cores or 1)
    assert target.num_domains == (1 if target.num_cores > 1 else 16)


def test_odroidc4_is_the_sdks_smp_build() -> None:
    target = target_for_board("odroidc4")
    assert (target.arch, target.num_cores, target.hypervisor) == ("aarch64", 4, True)
    assert (target.arm_pa_size_bits, target.arm_smc, target.iommu) == (40, True, False)


def test_one_core_selects_the_uniprocessor_build() -> None:
    target = target_for_board("odroidc4", cores=1)
    assert (target.num_cores, target.num_domains, target.num_domain_schedules) == (1, 16, 100)


def test_cortex_a72_boards_have_a_44_bit_guest_address_space() -> None:
    target = target_for_board("rpi4b_4gb")
    assert target.arm_pa_size_bits == 44
    assert target.vm_map_max_vaddr() == 1 << 44


def test_the_el1_and_non_vtx_boards_have_no_hypervisor() -> None:
    assert target_for_board("qemu_virt_aarch64_el1").hypervisor is False
    assert target_for_board("x86_64_generic").hypervisor is False
    assert target_for_board("x86_64_generic_vtx").hypervisor is True


def test_board_names_as_users_write_them() -> None:
    assert sdk_board("QEMU-virt-aarch64").name == "qemu_virt_aarch64"


def test_an_unknown_board_suggests_the_near_ones() -> None:
    with pytest.raises(Sel4VmmError) as raised:
        sdk_board("odroid-c4")
    assert raised.value.fix is not None and raised.value.fix.startswith("did you mean odroidc4")


def test_more_cores_than_the_board_has_is_refused() -> None:
    with pytest.raises(Sel4VmmError, match="at most 4 cores"):
        target_for_board("odroidc4", cores=8)
    with pytest.raises(Sel4VmmError, match="one core only"):
        target_for_board("rock3b", cores=2)


def test_the_base_keeps_version_and_search_paths(tmp_path: Path) -> None:
    base = MicrokitTarget(search_paths=(tmp_path,), microkit=MicrokitVersion.V1_4)
    target = target_for_board("maaxboard", base=base)
    assert target.search_paths == (tmp_path,) and target.microkit is MicrokitVersion.V1_4


LIBVMM_ON_SDK_BOARDS = sorted(
    path for path in REALWORLD.glob("libvmm/*/board/*/*.system") if path.parent.name in SDK_BOARDS
)


def test_libvmm_examples_were_found() -> None:
    assert len(LIBVMM_ON_SDK_BOARDS) >= 10


@pytest.mark.parametrize(
    "path", LIBVMM_ON_SDK_BOARDS, ids=lambda p: str(p.relative_to(REALWORLD / "libvmm"))
)
def test_each_libvmm_example_checks_on_its_boards_sdk_configuration(path: Path) -> None:
    """``check --board <the board directory>``, nothing else (virtio-snd: ``--microkit 1.4``)."""
    version = MicrokitVersion.V1_4 if "/virtio-snd/" in str(path) else MicrokitVersion.V2
    target = target_for_board(path.parent.name, base=MicrokitTarget(microkit=version))
    result = check_file(path, target)
    assert result.ok, [d.tool_text for d in result.errors]
