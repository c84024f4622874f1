"""``sel4vmm check`` on Microkit files: the tool's 147 verdicts through the command line,
``--board`` (the SDK's kernel configuration), ``--microkit``, ``--no-smc`` and ``-D``/``-I``
for preprocessed (LionsOS) files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.config.microkit import MicrokitTarget
from sel4vmm.errors import Sel4VmmError
from tests.cli.check_runner import run
from tests.config.microkit.test_sdf_suite import (
    DEFAULT_AARCH64_KERNEL_CONFIG,
    EXPECTATIONS,
    PREFILLS,
    SUCCESS,
    SUITE,
)
from tests.helpers import REALWORLD

SMP = REALWORLD / "libvmm/smp/board/odroidc4/smp.system"
VIRTIO_SND = REALWORLD / "libvmm/virtio-snd/board/qemu_virt_aarch64/virtio-snd.system"
ARM_SMC = REALWORLD / "microkit-examples/arm_smc.system"


def flags_for(target: MicrokitTarget) -> list[str]:
    """The command-line flags that give test.rs's kernel configuration ``target``.

    test.rs's AArch64 configs have ``arm_smc: None``; the command line's AArch64 default
    is the SDK's (SMC allowed) -- no suite file uses ``smc``, so the verdicts agree.
    """
    flags = ["--arch", target.arch, "--cores", str(target.num_cores)]
    if not target.iommu:
        flags.append("--no-iommu")
    if not target.hypervisor:
        flags.append("--no-hypervisor")
    return [*flags, "--search-path", str(PREFILLS)]


@pytest.mark.parametrize(
    ("target", "file", "expected"),
    [pytest.param(t, f, e, id=name) for name, t, f, e in EXPECTATIONS],
)
def test_tool_messages_meet_every_test_rs_expectation(
    target: MicrokitTarget,
    file: str,
    expected: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The harness passes the bare file name: run where the suite is, name the file bare.
    monkeypatch.chdir(SUITE)
    code, output = run("--tool-messages", *flags_for(target), file)
    if expected is SUCCESS:
        # Accepted (check_success); the tool's warnings, if any, may be printed.
        assert code == 0, output
        assert all(
            line.startswith("WARNING: ") or line == f"{file}: ok" for line in output.splitlines()
        )
    else:
        assert code == 1
        assert output.startswith(expected), output


def test_the_cli_flags_rebuild_the_default_config() -> None:
    assert flags_for(DEFAULT_AARCH64_KERNEL_CONFIG)[:4] == ["--arch", "aarch64", "--cores", "1"]


def test_board_alone_checks_an_smp_system() -> None:
    assert run("--board", "odroidc4", str(SMP)) == (0, f"{SMP}: ok\n")


def test_board_with_one_core_is_the_uniprocessor_sdk_config() -> None:
    code, output = run("--board", "odroidc4", "--cores", "1", str(SMP))
    assert code == 1
    assert "cpu core must be less than 1, got 1 on element 'vcpu'" in output


def test_without_a_board_an_smp_system_needs_cores() -> None:
    code, _ = run(str(SMP))
    assert code == 1
    assert run("--cores", "4", str(SMP))[0] == 0


def test_an_unknown_board_is_refused_by_name() -> None:
    with pytest.raises(Sel4VmmError) as raised:
        run("--board", "odroidc5", str(SMP))
    assert raised.value.message == "'odroidc5' is not a board the Microkit SDK is built for"
    assert raised.value.fix is not None and "odroidc4" in raised.value.fix


def test_board_aliases_reach_the_sdk_board() -> None:
    """The board table's spellings (odroid_c4, qemu-arm-virt) name the same SDK board."""
    assert run("--board", "odroid_c4", str(SMP)) == (0, f"{SMP}: ok\n")


def test_a_board_the_sdk_does_not_build_keeps_the_test_defaults() -> None:
    """tx2 is a CAmkES board: its architecture is used, with test.rs's defaults."""
    path = REALWORLD / "libvmm/simple/board/qemu_virt_aarch64/simple.system"
    assert run("--board", "tx2", str(path)) == (0, f"{path}: ok\n")


def test_board_and_a_contradicting_arch_are_refused() -> None:
    with pytest.raises(Sel4VmmError, match="contradicts --board odroidc4"):
        run("--board", "odroidc4", "--arch", "x86_64", str(SMP))


def test_x86_board_without_vtx_has_no_virtual_machines() -> None:
    path = REALWORLD / "libvmm/simple/board/x86_64_generic_vtx/simple.system"
    assert run("--board", "x86_64_generic_vtx", str(path))[0] == 0
    code, output = run("--tool-messages", "--board", "x86_64_generic", str(path))
    assert code == 1
    assert "seL4 has not been built as a hypervisor, virtual machines are disabled" in output


def test_smc_follows_the_kernel_configuration() -> None:
    assert run("--board", "qemu_virt_aarch64", str(ARM_SMC))[0] == 0
    code, output = run("--tool-messages", "--no-smc", str(ARM_SMC))
    assert code == 1
    assert output.startswith(
        "Error: Using SMC support without ARM SMC forwarding support enabled in the kernel for "
        "this platform on element 'protection_domain': "
    )
    code, output = run("--tool-messages", "--board", "qemu_virt_riscv64", str(ARM_SMC))
    assert (code, output.strip()) == (
        1,
        "ARM SMC forwarding support is not available for this architecture",
    )


def test_microkit_version_selects_the_rules() -> None:
    assert run("--microkit", "1.4", str(VIRTIO_SND)) == (0, f"{VIRTIO_SND}: ok\n")
    code, output = run(str(VIRTIO_SND))
    assert code == 1
    assert "invalid attribute 'pp' on element 'protection_domain'" in output
    assert "--microkit 1.4" in output


def test_an_unknown_microkit_version_is_one_error() -> None:
    with pytest.raises(Sel4VmmError, match=r"unknown Microkit version '3\.0'"):
        run("--microkit", "3.0", str(VIRTIO_SND))


# cpp does not expand inside string literals, so preprocessed descriptions select and
# include whole elements: per-board fragments and #ifdef'd features.
LIONSOS_STYLE = """\
<?xml version="1.0" encoding="UTF-8"?>
<system>
#include "board_regions.xml"
    <protection_domain name="serial" priority="100">
#ifdef WITH_SERIAL
        <program_image path="serial.elf" />
#endif
        <map mr="uart" vaddr="0x5000000" perms="rw" cached="false" />
    </protection_domain>
</system>
"""
BOARD_REGIONS = """\
    <memory_region name="uart" size="0x1000" phys_addr="0x9000000" />
"""


def lionsos_tree(tmp_path: Path, regions: str = BOARD_REGIONS) -> Path:
    include = tmp_path / "include"
    include.mkdir()
    (include / "board_regions.xml").write_text(regions)
    system = tmp_path / "serial.system"
    system.write_text(LIONSOS_STYLE)
    return system


def test_a_preprocessed_system_checks_with_defines_and_includes(tmp_path: Path) -> None:
    system = lionsos_tree(tmp_path)
    args = ["-I", str(tmp_path / "include"), "-D", "WITH_SERIAL"]
    assert run(*args, str(system)) == (0, f"{system}: ok\n")


def test_preprocessed_findings_name_the_original_line(tmp_path: Path) -> None:
    system = lionsos_tree(tmp_path)
    code, output = run("-I", str(tmp_path / "include"), str(system))
    assert code == 1
    # Without WITH_SERIAL the PD has no program image: the PD starts on line 4 of
    # serial.system (line 5 of the expanded text, after the included region).
    assert output.startswith(f"{system}:4:5: error: missing 'program_image' element")


def test_findings_in_an_included_fragment_name_the_fragment(tmp_path: Path) -> None:
    system = lionsos_tree(tmp_path, '\n    <memory_region name="uart" size="0x1001" />\n')
    code, output = run("-I", str(tmp_path / "include"), "-D", "WITH_SERIAL", str(system))
    assert code == 1
    fragment = tmp_path / "include" / "board_regions.xml"
    assert output.startswith(f"{fragment}:2:5: error: size is not a multiple of the page size")


def test_a_missing_include_is_located_at_the_directive(tmp_path: Path) -> None:
    system = lionsos_tree(tmp_path)
    code, output = run(str(system))
    assert code == 1
    assert output.startswith(f"{system}:3: error: cannot find the included file")
    assert "fix: pass the directory that holds it with -I DIR" in output


def test_board_is_not_resolved_for_camkes_files_alone() -> None:
    """--board names a Microkit SDK board; a CAmkES-only run must not fail on it."""
    path = REALWORLD / "camkes-vm-examples/vm_minimal/vm_minimal.camkes"
    code, output = run("--board", "qemu-arm-virt", "-D", "PLAT=qemu-arm-virt", str(path))
    assert (code, output) == (0, f"{path}: ok\n")
